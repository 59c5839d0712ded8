#!/bin/sh
# Creates one database per service (RN623_DATABASES, comma separated) owned by
# $POSTGRES_USER. Run once by the postgres image, on an empty data directory.
set -eu
for db in $(echo "${RN623_DATABASES:-}" | tr ',' ' '); do
  echo "creating database $db"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
