"""Unit tests for the helpers that need no server."""

from __future__ import annotations

import socket

import pytest

from rn623_devinfra.databases import validate_database_name, with_database, with_driver
from rn623_devinfra.ports import free_port, port_is_open, wait_for_port

pytestmark = pytest.mark.unit


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_port_times_out_on_a_closed_port() -> None:
    port = free_port()
    assert not port_is_open("127.0.0.1", port)
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.2)


def test_wait_for_port_returns_once_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        wait_for_port("127.0.0.1", sock.getsockname()[1], timeout=2)


@pytest.mark.parametrize("name", ["protocol_svc", "_x", "a" * 63, "test_0f3a"])
def test_valid_database_names(name: str) -> None:
    assert validate_database_name(name) == name


@pytest.mark.parametrize("name", ["", "Protocol", "1abc", "a-b", 'x"; DROP', "a" * 64])
def test_invalid_database_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid database name"):
        validate_database_name(name)


def test_url_rewriting() -> None:
    admin = "postgresql+asyncpg://postgres@127.0.0.1:5433/postgres?sslmode=disable"
    assert with_driver(admin, "postgresql") == (
        "postgresql://postgres@127.0.0.1:5433/postgres?sslmode=disable"
    )
    assert with_database(admin, "igr_svc") == (
        "postgresql+asyncpg://postgres@127.0.0.1:5433/igr_svc?sslmode=disable"
    )
