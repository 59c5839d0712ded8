"""Integration tests of ``devctl run`` as a real subprocess with free ports and a temp state."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import psutil
import pytest

from rn623_devinfra.databases import database_exists
from rn623_devinfra.ports import free_port, port_is_open
from rn623_devinfra.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration

PROBE_DB = "devctl_probe_svc"


def _devctl_env(base: dict[str, str], state: Path) -> tuple[dict[str, str], int, int]:
    pg_port, broker_port = free_port(), free_port()
    env = dict(base)
    env.update(
        RN623_STATE_DIR=str(state),
        RN623_PG_PORT=str(pg_port),
        RN623_BROKER_PORT=str(broker_port),
    )
    return env, pg_port, broker_port


def _devctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "rn623_devctl", "run", *args]


def _leftovers(state: Path, *markers: str) -> list[str]:
    """Command lines of live processes that belong to this run."""
    found = []
    needles = (str(state), *markers)
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(needle in cmdline for needle in needles) and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def _assert_all_stopped(state: Path, ports: list[int], *markers: str) -> None:
    assert _leftovers(state, *markers) == []
    for port in ports:
        assert not port_is_open("127.0.0.1", port), port


def test_run_with_one_service(
    server_tmp_path: Path, clean_env: dict[str, str], make_probe_service: Callable[..., Path]
) -> None:
    state = server_tmp_path / "state"
    env, pg_port, broker_port = _devctl_env(clean_env, state)
    api_port = free_port()
    services = make_probe_service(api_port)
    started = time.monotonic()
    result = subprocess.run(
        _devctl("--services-dir", str(services), "--exit-after-ready", "--ready-timeout", "90"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(f"devctl run --exit-after-ready: {time.monotonic() - started:.1f}s")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "probe-svc ready" in out
    assert f"http://127.0.0.1:{api_port}/docs" in out
    assert "Stopping 1 service(s)" in out
    assert "Stopped." in out
    logs = state / "logs"
    assert "probe worker started" in (logs / "probe-svc-worker.log").read_text()
    assert (logs / "probe-svc-api.log").exists()
    _assert_all_stopped(
        state, [pg_port, broker_port, api_port], f"127.0.0.1:{broker_port}", PROBE_DB
    )
    asyncio.run(_check_database(state, pg_port))


async def _check_database(state: Path, pg_port: int) -> None:
    """The run created and migrated the service database, kept in the state directory."""
    server = EmbeddedPostgres(state / "postgres" / "data", pg_port)
    server.start()
    try:
        assert await database_exists(server.admin_url(), PROBE_DB)
        conn = await asyncpg.connect(server.url(PROBE_DB, driver="postgresql"))
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0001"
        finally:
            await conn.close()
    finally:
        server.stop()


def test_run_without_services_stops_on_sigterm(
    tmp_path: Path, server_tmp_path: Path, clean_env: dict[str, str]
) -> None:
    state = server_tmp_path / "state"
    env, pg_port, broker_port = _devctl_env(clean_env, state)
    empty = tmp_path / "services"
    empty.mkdir()
    out_path = tmp_path / "devctl.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            _devctl("--services-dir", str(empty)), env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            while "Press Ctrl-C" not in out_path.read_text():
                assert proc.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, out_path.read_text()
                time.sleep(0.1)
            assert "infrastructure only" in out_path.read_text()
            # A second run on the same state directory is refused and disturbs nothing.
            second = subprocess.run(
                _devctl("--services-dir", str(empty), "--exit-after-ready"),
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert second.returncode == 1
            assert "another devctl" in second.stdout
            assert port_is_open("127.0.0.1", pg_port)
            assert port_is_open("127.0.0.1", broker_port)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out_path.read_text()
    assert "SIGTERM received: stopping" in text
    assert "Stopping PostgreSQL" in text
    _assert_all_stopped(state, [pg_port, broker_port], f"127.0.0.1:{broker_port}")


def test_run_fails_when_a_service_cannot_start(
    server_tmp_path: Path, clean_env: dict[str, str], make_probe_service: Callable[..., Path]
) -> None:
    state = server_tmp_path / "state"
    env, pg_port, broker_port = _devctl_env(clean_env, state)
    api_port = free_port()
    services = make_probe_service(api_port, broken=True)
    result = subprocess.run(
        _devctl("--services-dir", str(services), "--exit-after-ready", "--ready-timeout", "60"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "probe-svc api exited with code" in result.stdout
    assert "probe api refuses to start" in result.stdout  # the log tail is shown
    _assert_all_stopped(
        state, [pg_port, broker_port, api_port], f"127.0.0.1:{broker_port}", PROBE_DB
    )


def test_run_recovers_after_a_crash(
    tmp_path: Path,
    server_tmp_path: Path,
    clean_env: dict[str, str],
    make_probe_service: Callable[..., Path],
) -> None:
    state = server_tmp_path / "state"
    env, pg_port, broker_port = _devctl_env(clean_env, state)
    api_port = free_port()
    services = make_probe_service(api_port)
    out_path = tmp_path / "devctl.out"
    with out_path.open("w") as out:
        crashed = subprocess.Popen(
            _devctl("--services-dir", str(services)), env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            while "Press Ctrl-C" not in out_path.read_text():
                assert crashed.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, out_path.read_text()
                time.sleep(0.1)
        finally:
            crashed.kill()  # no cleanup at all: servers and services are left running
            crashed.wait()
    assert port_is_open("127.0.0.1", api_port)

    result = subprocess.run(
        _devctl("--services-dir", str(services), "--exit-after-ready", "--ready-timeout", "90"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped processes left by an earlier run" in result.stdout
    assert "probe-svc ready" in result.stdout
    _assert_all_stopped(
        state, [pg_port, broker_port, api_port], f"127.0.0.1:{broker_port}", PROBE_DB
    )


def test_replay_dead_letters_runs_the_worker_with_the_runs_settings(
    server_tmp_path: Path, clean_env: dict[str, str], make_probe_service: Callable[..., Path]
) -> None:
    """``devctl replay-dead-letters`` runs the service's worker once with the database and
    broker ``devctl run`` gives it; an unknown service is refused by name."""
    state = server_tmp_path / "state"
    env, pg_port, broker_port = _devctl_env(clean_env, state)
    services = make_probe_service(free_port())
    command = [sys.executable, "-m", "rn623_devctl", "replay-dead-letters"]
    options = ["--services-dir", str(services), "--max-seconds", "5"]
    result = subprocess.run(
        [*command, "probe-svc", *options], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "probe replay --max-seconds 5" in lines
    assert "SERVICE_NAME=probe-svc" in lines
    assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{broker_port}" in lines
    database = next(line for line in lines if line.startswith("DATABASE_URL="))
    assert f"127.0.0.1:{pg_port}/{PROBE_DB}" in database
    unknown = subprocess.run(
        [*command, "nothing-svc", *options], env=env, capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2
    assert "nothing-svc" in unknown.stdout + unknown.stderr
