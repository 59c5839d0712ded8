#!/bin/sh
# Entrypoint of every rn623 service image (services/<name>-svc/Dockerfile).
#
#   api          uvicorn <package>.app:create_app --factory on $HOST:$PORT (0.0.0.0)
#   worker       python -m <package>.worker (its /livez, /readyz and /metrics on
#                $WORKER_PORT, see rn623_events.worker_http)
#   migrate      alembic upgrade head (alembic.ini of the service, DATABASE_URL)
#   topics       create the catalogued Kafka topics that are missing (idempotent)
#   healthcheck  exit 0 when the api answers GET /readyz (for docker-compose)
#   anything else is executed as is (e.g. "python", "alembic history")
#
# The image sets SERVICE_PACKAGE and PORT; every other setting comes from the
# environment (see libs/events/src/rn623_events/settings.py).
set -eu

: "${SERVICE_PACKAGE:?SERVICE_PACKAGE is not set}"
: "${PORT:=8000}"

role="${1:-api}"
[ "$#" -gt 0 ] && shift

case "$role" in
  api)
    exec uvicorn "${SERVICE_PACKAGE}.app:create_app" --factory \
      --host "${HOST:-0.0.0.0}" --port "$PORT" \
      --no-access-log --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" \
      --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_SECONDS:-20}" "$@"
    ;;
  worker)
    exec python -m "${SERVICE_PACKAGE}.worker" "$@"
    ;;
  migrate)
    cd /app/service
    exec alembic upgrade head "$@"
    ;;
  topics)
    exec python - "$@" <<'PY'
import asyncio

from rn623_events.settings import KafkaSettings
from rn623_events.topics import ensure_topics

created = asyncio.run(ensure_topics(KafkaSettings()))
print("topics created:", ", ".join(created) or "none (all exist)")
PY
    ;;
  healthcheck)
    exec python - <<'PY'
import os
import sys
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/readyz"
try:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
