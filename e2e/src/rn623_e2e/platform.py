"""The whole platform for one end-to-end run: PostgreSQL, the broker, the provider emulators
and every service's api and worker, on free loopback ports, with one clock to move them all.

The pieces are devctl's (service discovery, migrations, managed processes, emulators), so a
run starts the platform exactly as ``make run`` does; only the ports, the state directory,
the movable clock and, unless ``fast_timers`` is off, the faster periodic work differ.
Every process can be killed, restarted or frozen on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rn623_devctl.emulators import NOTIFICATION_SERVICE, emulator_process, notification_env
from rn623_devctl.processes import ManagedProcess, stop_processes
from rn623_devctl.runner import migrate
from rn623_devctl.services import ServiceSpec, discover_services, service_env
from rn623_devctl.topics import ensure_platform_topics
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database
from rn623_devinfra.files import tail
from rn623_devinfra.ports import LOCALHOST, free_port, wait_for_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_devinfra.provider_emulators.client import EmulatorClient
from rn623_events.auth import mint_token
from rn623_events.settings import AuthSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT = 120.0
PROTOCOL_SERVICE = "protocol-svc"
PROTOCOL_NUMBER = re.compile(r"\d{20,30}")

# Faster periodic work than production, so moved clocks take effect within a second or two.
FAST_TIMERS = {
    "SCHEDULER_INTERVAL_SECONDS": "0.5",
    "PURGE_INTERVAL_SECONDS": "1",
    "COLLECTOR_INTERVAL_SECONDS": "1",
    "CLOSER_INTERVAL_SECONDS": "2",
    "FALLBACK_INTERVAL_SECONDS": "0.5",
}


def protocols_named(message: dict[str, Any]) -> set[str]:
    """The protocol numbers a provider message mentions (its text, template or e-mail)."""
    return set(PROTOCOL_NUMBER.findall(json.dumps(message)))


class PlatformError(RuntimeError):
    """A part of the platform did not start or stopped unexpectedly."""


@dataclass
class ServiceRun:
    """One service of the run: its port, environment and two processes."""

    spec: ServiceSpec
    port: int
    env: dict[str, str]
    api: ManagedProcess
    worker: ManagedProcess

    @property
    def url(self) -> str:
        """Base URL of the api."""
        return f"http://{LOCALHOST}:{self.port}"


@dataclass
class Platform:
    """A running platform in ``workdir``; use as a context manager or call start/stop."""

    workdir: Path
    services_dir: Path = REPO_ROOT / "services"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    services: dict[str, ServiceRun] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    broker: TansuBroker | None = None
    emulators: ManagedProcess | None = None
    emulator_ports: tuple[int, int] = (0, 0)
    offset: timedelta = timedelta(0)
    fast_timers: bool = True  # False: the services' own intervals, as ``make run`` has them

    @property
    def logs(self) -> Path:
        """Directory of every process's log."""
        return self.workdir / "logs"

    @property
    def offset_file(self) -> Path:
        """The file every service's clock adds to the wall clock (``CLOCK_OFFSET_FILE``)."""
        return self.workdir / "clock-offset"

    @property
    def emulator_url(self) -> str:
        """Base URL of the provider emulators (and their control API)."""
        return f"http://{LOCALHOST}:{self.emulator_ports[0]}"

    @property
    def urls(self) -> dict[str, str]:
        """Service name → api base URL."""
        return {name: run.url for name, run in self.services.items()}

    def emulators_client(self) -> EmulatorClient:
        """A client of the emulators' control API (messages received, faults); close it."""
        return EmulatorClient(self.emulator_url)

    async def provider_messages(self) -> list[dict[str, Any]]:
        """Every message the provider emulators accepted, oldest first."""
        client = self.emulators_client()
        try:
            return await client.messages()
        finally:
            await client.aclose()

    def url(self, service: str) -> str:
        """Base URL of one service's api."""
        return self.services[service].url

    def __enter__(self) -> Platform:
        try:
            self.start()
        except BaseException:  # what did start must not outlive the run
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        """Start everything and wait until every api answers ``/readyz``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.offset_file.write_text("0")
        specs = discover_services(self.services_dir)
        if not specs:
            raise PlatformError(f"no services in {self.services_dir}")
        self.postgres = EmbeddedPostgres(
            self.workdir / "postgres", free_port(), fsync=False, log_path=self.logs / "postgres.log"
        )
        self.postgres.start()
        self.broker = TansuBroker(free_port(), self.logs / "broker.log")
        self.broker.start()
        ensure_platform_topics(self.broker.bootstrap_servers)
        ports = {spec.name: free_port() for spec in specs}
        if NOTIFICATION_SERVICE in ports:
            self._start_emulators(specs, ports[NOTIFICATION_SERVICE])
        envs = {spec.name: self._service_env(spec, ports) for spec in specs}
        # Migrations are independent (a database each): run them side by side.
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            list(pool.map(lambda spec: self._migrate(spec, envs[spec.name]), specs))
        for spec in specs:
            self._start_service(spec, ports[spec.name], envs[spec.name])
        self.wait_ready()

    def _start_emulators(self, specs: list[ServiceSpec], notifier_port: int) -> None:
        """Start the SMTP sink and the provider emulators, calling back notification-svc."""
        notifier = next(spec for spec in specs if spec.name == NOTIFICATION_SERVICE)
        self.emulator_ports = (free_port(), free_port())
        self.emulators = emulator_process(
            notifier.directory,
            self.logs / "provider-emulators.log",
            self._webhooks(notifier_port),
            self.emulator_ports,
        )
        self.emulators.start()
        wait_for_port(LOCALHOST, self.emulator_ports[0], timeout=30)

    @staticmethod
    def _webhooks(port: int) -> str:
        return f"http://{LOCALHOST}:{port}/v1/webhooks"

    def _service_env(self, spec: ServiceSpec, ports: dict[str, int]) -> dict[str, str]:
        """The environment of a service's processes, as devctl builds it, plus the e2e knobs."""
        assert self.postgres is not None
        assert self.broker is not None
        base = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DATABASE_"))}
        env = service_env(
            spec,
            base,
            database_url=with_database(
                self.postgres.admin_url(), spec.database, "postgresql+asyncpg"
            ),
            bootstrap_servers=self.broker.bootstrap_servers,
            secret=self.secret,
        )
        if self.fast_timers:
            env.update(FAST_TIMERS)
        env["CLOCK_OFFSET_FILE"] = str(self.offset_file)
        if PROTOCOL_SERVICE in ports:  # retention-svc reads records for access requests
            env["PROTOCOL_SVC_URL"] = f"http://{LOCALHOST}:{ports[PROTOCOL_SERVICE]}"
        if spec.name == NOTIFICATION_SERVICE:
            env.update(notification_env(self._webhooks(ports[spec.name]), self.emulator_ports))
        return env

    def _migrate(self, spec: ServiceSpec, env: dict[str, str]) -> None:
        """Create the service's database and run its migrations."""
        assert self.postgres is not None
        asyncio.run(create_database(self.postgres.admin_url(), spec.database))
        if spec.has_migrations:
            migrate(spec, env, self.logs / f"{spec.name}-migrate.log")

    def _start_service(self, spec: ServiceSpec, port: int, env: dict[str, str]) -> None:
        """Start the service's api and worker."""
        run = ServiceRun(
            spec,
            port,
            env,
            api=ManagedProcess(
                f"{spec.name} api",
                spec.api_command(LOCALHOST, port),
                cwd=spec.directory,
                env=env,
                log_path=self.logs / f"{spec.name}-api.log",
            ),
            worker=self._worker_process(spec, env),
        )
        self.services[spec.name] = run
        run.api.start()
        run.worker.start()

    def _worker_process(self, spec: ServiceSpec, env: dict[str, str]) -> ManagedProcess:
        return ManagedProcess(
            f"{spec.name} worker",
            spec.worker_command(),
            cwd=spec.directory,
            env=env,
            log_path=self.logs / f"{spec.name}-worker.log",
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every api answers ``/readyz`` with 200; fail with the log of a dead one."""
        pending = set(self.services)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while pending:
                for name in sorted(pending):
                    run = self.services[name]
                    for proc in (run.api, run.worker):
                        if proc.poll() is not None:
                            raise PlatformError(
                                f"{proc.label} exited with {proc.poll()}:\n{tail(proc.log_path)}"
                            )
                    try:
                        if client.get(f"{run.url}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise PlatformError(f"not ready after {timeout:.0f} s: {sorted(pending)}")
                if pending:
                    time.sleep(0.3)

    def processes(self) -> Iterator[ManagedProcess]:
        """Every api and worker process, and the emulators."""
        for run in self.services.values():
            yield run.api
            yield run.worker
        if self.emulators is not None:
            yield self.emulators

    def dead_processes(self) -> list[str]:
        """Labels of processes that exited although nobody stopped them."""
        return [proc.label for proc in self.processes() if proc.poll() is not None]

    def stop(self) -> None:
        """Stop the services, the emulators, the broker and PostgreSQL."""
        stop_processes(list(self.processes()), grace=10.0)
        if self.broker is not None:
            if self.broker.frozen:
                self.broker.thaw()
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()

    # --- time -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The platform's current instant (wall clock plus the moved offset)."""
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move every service's clock forward by ``delta`` (seen within a fraction of a second)."""
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self.offset += delta
        staging = self.offset_file.with_suffix(".new")
        staging.write_text(repr(self.offset.total_seconds()))
        staging.replace(self.offset_file)

    # --- tokens ---------------------------------------------------------------------------

    def token(self, operators: list[str] | None = None, scopes: list[str] | None = None) -> str:
        """A valid bearer token (wall-clock times: the services verify tokens by real time)."""
        auth = AuthSettings()
        return mint_token(
            self.secret,
            subject="e2e",
            operators=operators or ["*"],
            scopes=scopes or ["admin"],
            ttl=timedelta(hours=6),
            issuer=auth.issuer,
            audience=auth.audience,
            now=datetime.now(UTC),
        )

    def headers(
        self, operators: list[str] | None = None, scopes: list[str] | None = None
    ) -> dict[str, str]:
        """Authorization headers with ``token(operators, scopes)``."""
        return {"Authorization": f"Bearer {self.token(operators, scopes)}"}

    # --- faults ---------------------------------------------------------------------------

    def kill_worker(self, service: str) -> None:
        """SIGKILL a service's worker (no clean shutdown: whatever it was doing is cut off)."""
        run = self.services[service]
        run.worker.signal_group(signal.SIGKILL)
        run.worker.wait(10)
        run.worker.close_log()

    def start_worker(self, service: str) -> None:
        """Start a new worker for ``service`` (after ``kill_worker``)."""
        run = self.services[service]
        run.worker = self._worker_process(run.spec, run.env)
        run.worker.start()

    async def replay_dead_letters(self, service: str) -> str:
        """Run ``<service worker> replay-dead-letters`` as an operator would, with the
        service's settings, next to its running worker; return what it printed."""
        run = self.services[service]
        process = await asyncio.create_subprocess_exec(
            *run.spec.worker_command(), "replay-dead-letters", "--max-seconds", "20",
            cwd=run.spec.directory, env=run.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"{service} replay-dead-letters exited {process.returncode}")
        return output.decode()

    def restart_postgres(self) -> None:
        """Stop and start PostgreSQL under the running services."""
        assert self.postgres is not None
        self.postgres.restart()

    def freeze_broker(self) -> None:
        """SIGSTOP the broker: connections stay open and nothing answers."""
        assert self.broker is not None
        self.broker.freeze()

    def thaw_broker(self) -> None:
        """SIGCONT the broker."""
        assert self.broker is not None
        self.broker.thaw()

    def log_files(self) -> list[Path]:
        """Every log file the run wrote."""
        return sorted(self.logs.glob("*.log"))

    def database_url(self, service: str, driver: str = "postgresql") -> str:
        """URL of a service's own database (for counting effects after a fault)."""
        assert self.postgres is not None
        return with_database(
            self.postgres.admin_url(), self.services[service].spec.database, driver
        )
