"""Create and drop databases on a PostgreSQL server (names are validated: they are interpolated)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_database_name(name: str) -> str:
    """Return ``name`` if it is a safe lower-case identifier, else raise ``ValueError``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid database name {name!r}: expected {_NAME.pattern}")
    return name


def with_driver(url: str, driver: str) -> str:
    """Return ``url`` with its scheme set to ``driver`` (``postgresql``, ``postgresql+asyncpg``)."""
    parts = urlsplit(url)
    return urlunsplit((driver, parts.netloc, parts.path, parts.query, parts.fragment))


def with_database(url: str, database: str, driver: str = "postgresql+asyncpg") -> str:
    """Return ``url`` pointing at ``database`` instead, with the given driver scheme."""
    parts = urlsplit(url)
    return urlunsplit((driver, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def _connect(admin_url: str) -> asyncpg.Connection:
    """Connect to the maintenance database given by ``admin_url`` (any driver suffix)."""
    return await asyncpg.connect(with_driver(admin_url, "postgresql"), timeout=30)


async def database_exists(admin_url: str, name: str) -> bool:
    """Return True when database ``name`` exists on the server."""
    conn = await _connect(admin_url)
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    return found is not None


async def create_database(admin_url: str, name: str) -> bool:
    """Create database ``name`` unless it exists; return True when it was created now."""
    validate_database_name(name)
    conn = await _connect(admin_url)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return False
    finally:
        await conn.close()
    return True


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions (``WITH (FORCE)``)."""
    validate_database_name(name)
    conn = await _connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def server_version(admin_url: str) -> str:
    """Connect to the server and return its ``server_version`` (a cheap reachability check)."""
    conn = await _connect(admin_url)
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return version


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
