"""``devctl run``: infrastructure, migrations, every service's api and worker, then wait."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from rn623_devctl.console import block, console, error, info, step, warn
from rn623_devctl.emulators import (
    NOTIFICATION_SERVICE,
    emulator_ports,
    emulator_process,
    notification_env,
)
from rn623_devctl.infra import Infra, StartupError
from rn623_devctl.jwt_secret import load_or_create_secret
from rn623_devctl.lock import StateLocked, state_lock
from rn623_devctl.paths import logs_dir
from rn623_devctl.processes import ManagedProcess, stop_processes
from rn623_devctl.services import (
    ServiceConfigError,
    ServiceSpec,
    discover_services,
    service_env,
)
from rn623_devctl.signals import StopRequested, shielded, stop_on_signals
from rn623_devctl.topics import ensure_platform_topics
from rn623_devinfra.databases import create_database, redact_url, with_database
from rn623_devinfra.files import tail
from rn623_devinfra.ports import LOCALHOST, port_is_open, wait_for_port

MIGRATION_TIMEOUT = 300.0
STOP_GRACE = 10.0


@dataclass
class RunOptions:
    """What ``devctl run`` was asked to do."""

    state: Path
    services_dir: Path
    exit_after_ready: bool = False
    ready_timeout: float = 120.0


@dataclass
class RunningService:
    """A service with its api and worker processes."""

    spec: ServiceSpec
    database_url: str
    api: ManagedProcess
    worker: ManagedProcess

    @property
    def url(self) -> str:
        """Base URL of the api."""
        return f"http://{LOCALHOST}:{self.spec.port}"


@dataclass
class Platform:
    """Everything a run started, so that it can all be stopped in order."""

    options: RunOptions
    infra: Infra
    secret: str | None  # None when JWT_PUBLIC_KEY or JWT_JWKS_URL configures the services
    services: list[RunningService] = field(default_factory=list)
    emulators: ManagedProcess | None = None

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every api and worker process, and the provider emulators."""
        procs = [proc for svc in self.services for proc in (svc.api, svc.worker)]
        return procs + ([self.emulators] if self.emulators is not None else [])


def _platform(options: RunOptions) -> Platform:
    """A run's platform, nothing started yet: its state, servers and JWT secret (none when
    ``JWT_PUBLIC_KEY`` or ``JWT_JWKS_URL`` configures the services)."""
    external_keys = os.environ.get("JWT_PUBLIC_KEY") or os.environ.get("JWT_JWKS_URL")
    secret = None if external_keys else load_or_create_secret(options.state)
    return Platform(options, Infra(options.state), secret)


def run_platform(options: RunOptions) -> int:
    """Start everything, wait for Ctrl-C/SIGTERM (or not), stop everything; return the exit code."""
    platform = _platform(options)
    try:
        with state_lock(options.state):
            return _run_locked(platform)
    except StateLocked as exc:
        error(str(exc))
        return 1


def replay_dead_letters(options: RunOptions, service: str, max_seconds: float) -> int:
    """Run ``service``'s worker once with ``replay-dead-letters``, with the settings
    ``run_platform`` gives it (its database, the broker, the secret), against the servers
    of a local run; return the worker's exit code."""
    specs = {spec.name: spec for spec in discover_services(options.services_dir)}
    spec = specs.get(service)
    if spec is None:
        error(f"no service {service!r} in {options.services_dir}: {', '.join(sorted(specs))}")
        return 2
    platform = _platform(options)
    platform.infra.locate()
    database_url = _database_url(platform, spec)
    command = [
        *spec.worker_command(),
        "replay-dead-letters",
        "--max-seconds",
        f"{max_seconds:g}",
    ]
    env = _service_env(platform, spec, database_url)
    return subprocess.run(command, cwd=spec.directory, env=env, check=False).returncode


def _run_locked(platform: Platform) -> int:
    """The body of ``run_platform``, executed while holding the state lock."""
    options = platform.options
    code = 0
    try:
        with stop_on_signals():
            _start(platform)
            _print_summary(platform)
            if options.exit_after_ready:
                info("--exit-after-ready: shutting down now")
            else:
                console.print("[bold]Running. Press Ctrl-C to stop.[/bold]")
                _watch(platform)
    except StopRequested as stop:
        console.print(f"\n[bold]{stop} received: stopping[/bold]")
    except (StartupError, ServiceConfigError) as exc:
        error(str(exc))
        code = 1
    except Exception:
        console.print_exception()
        error("unexpected failure")
        code = 1
    finally:
        with shielded():
            _shutdown(platform)
    return code


def _start(platform: Platform) -> None:
    """Run every startup step, printing each as it happens."""
    options = platform.options
    console.print(f"[bold]State directory:[/bold] {options.state}")
    specs = discover_services(options.services_dir)
    platform.infra.reap_orphans()
    platform.infra.start_postgres()
    platform.infra.start_broker()
    ensure_platform_topics(platform.infra.bootstrap_servers)
    if not specs:
        warn(f"no services found in {options.services_dir}: running the infrastructure only")
    notifier = next((s for s in specs if s.name == NOTIFICATION_SERVICE), None)
    if notifier is not None:
        _start_emulators(platform, notifier)
    for spec in specs:
        _start_service(platform, spec)
    _wait_until_ready(platform)


def _service_env(platform: Platform, spec: ServiceSpec, database_url: str) -> dict[str, str]:
    """Environment of a service's processes: ours plus its name, database, broker and secret."""
    env = service_env(
        spec,
        os.environ,
        database_url=database_url,
        bootstrap_servers=platform.infra.bootstrap_servers,
        secret=platform.secret,
    )
    if spec.name == NOTIFICATION_SERVICE:
        env.update(notification_env(_webhooks(spec)))
    return env


def _database_url(platform: Platform, spec: ServiceSpec) -> str:
    """The URL of the service's own database on the run's server."""
    return with_database(platform.infra.admin_url, spec.database, "postgresql+asyncpg")


def _webhooks(spec: ServiceSpec) -> str:
    """notification-svc's webhook base URL in a local run."""
    return f"http://{LOCALHOST}:{spec.port}/v1/webhooks"


def _start_emulators(platform: Platform, notifier: ServiceSpec) -> None:
    """Start the SMTP sink and the provider emulators, calling back notification-svc."""
    http, smtp = emulator_ports()
    for port in (http, smtp):
        if port_is_open(LOCALHOST, port):
            raise StartupError(f"provider emulators: port {port} is already in use")
    logs = logs_dir(platform.options.state)
    proc = emulator_process(
        notifier.directory, logs / "provider-emulators.log", _webhooks(notifier)
    )
    platform.emulators = proc
    with step(f"Provider emulators (Zenvia, Twilio, Meta) and SMTP sink on {LOCALHOST}"):
        proc.start()
        if proc.pid is not None:
            platform.infra.children.add(proc.label, proc.pid)
        try:
            wait_for_port(LOCALHOST, http, timeout=30)
        except TimeoutError as exc:
            block(tail(proc.log_path))
            raise StartupError("the provider emulators did not start") from exc
        info(f"inbox of sent receipts: http://{LOCALHOST}:{http}/ (SMTP on port {smtp})")


def _start_service(platform: Platform, spec: ServiceSpec) -> RunningService:
    """Create the database, migrate it, then start the api and the worker."""
    logs = logs_dir(platform.options.state)
    admin_url = platform.infra.admin_url
    database_url = _database_url(platform, spec)
    env = _service_env(platform, spec, database_url)
    with step(f"{spec.name}: database {spec.database}"):
        created = asyncio.run(create_database(admin_url, spec.database))
        info("created" if created else "already exists")
    if spec.has_migrations:
        migrate(spec, env, logs / f"{spec.name}-migrate.log")
    else:
        warn(f"{spec.name}: no alembic.ini, skipping migrations")
    if port_is_open(LOCALHOST, spec.port):
        raise StartupError(f"{spec.name}: port {spec.port} is already in use")
    api = ManagedProcess(
        f"{spec.name} api",
        spec.api_command(LOCALHOST),
        cwd=spec.directory,
        env=env,
        log_path=logs / f"{spec.name}-api.log",
    )
    worker = ManagedProcess(
        f"{spec.name} worker",
        spec.worker_command(),
        cwd=spec.directory,
        env=env,
        log_path=logs / f"{spec.name}-worker.log",
    )
    running = RunningService(spec, database_url, api, worker)
    # registered before starting, so an interrupt in between still stops both processes
    platform.services.append(running)
    with step(f"{spec.name}: starting api on {running.url} and worker"):
        for proc in (api, worker):
            proc.start()
            if proc.pid is not None:
                platform.infra.children.add(proc.label, proc.pid)
        info(f"logs: {api.log_path.name}, {worker.log_path.name} in {logs}")
    return running


def migrate(spec: ServiceSpec, env: dict[str, str], log_path: Path) -> None:
    """Run ``alembic upgrade head`` in the service directory, output to ``log_path``."""
    with step(f"{spec.name}: alembic upgrade head"):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "alembic", "upgrade", "head"],
                    cwd=spec.directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=MIGRATION_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise StartupError(f"{spec.name}: migrations timed out ({log_path})") from exc
        if result.returncode != 0:
            block(tail(log_path))
            raise StartupError(f"{spec.name}: migrations failed, see {log_path}")


def _readyz(url: str) -> bool:
    """True when ``GET url/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_until_ready(platform: Platform) -> None:
    """Poll every api's ``/readyz``; fail fast if a process dies, with its log tail."""
    pending = list(platform.services)
    if not pending:
        return
    started = time.monotonic()
    deadline = started + platform.options.ready_timeout
    info(f"waiting for {len(pending)} service(s) to answer /readyz …")
    while pending:
        for svc in list(pending):
            for proc in (svc.api, svc.worker):
                code = proc.poll()
                if code is not None:
                    block(tail(proc.log_path))
                    raise StartupError(f"{proc.label} exited with code {code} during startup")
            if _readyz(svc.url):
                pending.remove(svc)
                console.print(
                    f"[green]✓[/green] {svc.spec.name} ready "
                    f"[dim]({time.monotonic() - started:.1f} s)[/dim]"
                )
        if pending and time.monotonic() > deadline:
            for svc in pending:
                error(
                    f"{svc.spec.name}: /readyz not 200 after {platform.options.ready_timeout:.0f} s"
                )
                block(tail(svc.api.log_path))
            raise StartupError("services did not become ready in time")
        if pending:
            time.sleep(0.3)


def _print_summary(platform: Platform) -> None:
    """Print the services table, the infrastructure addresses and an admin dev token."""
    infra = platform.infra
    if platform.services:
        table = Table(title="Services", show_lines=False)
        table.add_column("service", style="bold")
        table.add_column("URL")
        table.add_column("docs")
        table.add_column("logs")
        for svc in platform.services:
            table.add_row(
                svc.spec.name,
                svc.url,
                f"{svc.url}/docs",
                f"{svc.api.log_path.name}\n{svc.worker.log_path.name}",
            )
        console.print(table)
    console.print(f"[bold]PostgreSQL:[/bold] {redact_url(infra.admin_url)}")
    console.print(f"[bold]Broker:[/bold]     {infra.bootstrap_servers}")
    console.print(f"[bold]Logs:[/bold]       {logs_dir(platform.options.state)}")
    if platform.emulators is not None:
        console.print(
            f"[bold]Receipts:[/bold]   http://{LOCALHOST}:{emulator_ports()[0]}/ "
            "(SMS, WhatsApp and e-mails sent, as the emulators received them)"
        )
    if platform.secret is None:
        console.print("[bold]Tokens:[/bold] from your identity provider (JWT_PUBLIC_KEY/JWKS)")
        return
    console.print("[bold]Admin token[/bold] (all operators, 12 h; or run make token):")
    console.print(_admin_token(platform.secret), soft_wrap=True, markup=False)


def _admin_token(secret: str) -> str:
    """An admin token for every operator, or a note when minting is not available yet."""
    from rn623_devctl.tokens import mint_dev_token

    try:
        return mint_dev_token(secret)
    except ImportError:
        return "(rn623_events.auth is not available yet: no token)"
    except ValueError as exc:
        return f"(no token: {exc})"


def _watch(platform: Platform) -> None:
    """Wait until a signal arrives, reporting any api or worker that dies meanwhile."""
    while True:
        for proc in platform.processes:
            code = proc.poll()
            if code is not None and not proc.exit_reported:
                proc.exit_reported = True
                error(f"{proc.label} exited with code {code}; last lines of {proc.log_path}:")
                block(tail(proc.log_path, 20))
        time.sleep(0.5)


def _shutdown(platform: Platform) -> None:
    """Stop services (SIGTERM, grace, kill), then the broker, then PostgreSQL."""
    if platform.processes:
        with step(f"Stopping {len(platform.services)} service(s)"):
            killed = stop_processes(platform.processes, grace=STOP_GRACE)
            for label in killed:
                warn(f"{label} did not stop within {STOP_GRACE:.0f} s and was killed")
    platform.infra.stop()
    console.print("[bold]Stopped.[/bold]")
