"""The ``devctl`` command line: ``token``, ``infra``, ``run`` and ``replay-dead-letters``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from rn623_devctl.console import console, error
from rn623_devctl.infra import Infra, StartupError
from rn623_devctl.jwt_secret import load_or_create_secret
from rn623_devctl.lock import StateLocked, state_lock
from rn623_devctl.paths import repo_root, state_dir
from rn623_devctl.signals import StopRequested, shielded, stop_on_signals

app = typer.Typer(
    help="Developer CLI for the RN 623 platform.", no_args_is_help=True, add_completion=False
)


@app.command()
def token(
    operator: Annotated[
        list[str] | None,
        typer.Option("--operator", help="ANS registration (6 digits); repeatable. Default: all."),
    ] = None,
    scopes: Annotated[str, typer.Option(help="Space-separated scopes.")] = "admin",
    ttl_hours: Annotated[float, typer.Option(help="Lifetime in hours.", min=0.01)] = 12.0,
    subject: Annotated[str, typer.Option(help="The token's subject (sub).")] = "dev",
) -> None:
    """Print an HS256 dev JWT signed with JWT_SECRET or the state directory's secret."""
    from rn623_devctl.tokens import ALL_OPERATORS, mint_dev_token

    scope_list = scopes.split()
    if not scope_list:
        raise typer.BadParameter("at least one scope is needed", param_hint="--scopes")
    try:
        value = mint_dev_token(
            load_or_create_secret(state_dir()),
            operators=operator or [ALL_OPERATORS],
            scopes=scope_list,
            ttl=timedelta(hours=ttl_hours),
            subject=subject,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--operator") from exc
    typer.echo(value)


@app.command()
def infra() -> None:
    """Start only PostgreSQL and the broker, print their addresses, stop them on Ctrl-C."""
    state = state_dir()
    try:
        with state_lock(state):
            code = _run_infra(Infra(state))
    except StateLocked as exc:
        error(str(exc))
        code = 1
    raise typer.Exit(code)


def _run_infra(servers: Infra) -> int:
    """Start the servers, wait for a signal, stop them; return the exit code."""
    code = 0
    try:
        with stop_on_signals():
            servers.reap_orphans()
            servers.start_postgres()
            servers.start_broker()
            console.print(f"[bold]DATABASE_URL[/bold]={servers.admin_url}")
            console.print(f"[bold]KAFKA_BOOTSTRAP_SERVERS[/bold]={servers.bootstrap_servers}")
            console.print("[bold]Running. Press Ctrl-C to stop.[/bold]")
            while True:
                time.sleep(3600)
    except StopRequested as stop:
        console.print(f"\n[bold]{stop} received: stopping[/bold]")
    except StartupError as exc:
        error(str(exc))
        code = 1
    finally:
        with shielded():
            servers.stop()
    return code


@app.command()
def run(
    services_dir: Annotated[
        Path | None,
        typer.Option(help="Directory holding the <name>-svc folders. Default: <repo>/services."),
    ] = None,
    exit_after_ready: Annotated[
        bool, typer.Option(help="Stop everything as soon as all services are ready (tests).")
    ] = False,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every /readyz.", min=1)
    ] = 120.0,
) -> None:
    """Start PostgreSQL, the broker and every service; Ctrl-C or SIGTERM stops them all."""
    from rn623_devctl.runner import RunOptions, run_platform

    options = RunOptions(
        state=state_dir(),
        services_dir=(services_dir or repo_root() / "services").absolute(),
        exit_after_ready=exit_after_ready,
        ready_timeout=ready_timeout,
    )
    raise typer.Exit(run_platform(options))


@app.command("replay-dead-letters")
def replay_dead_letters(
    service: Annotated[str, typer.Argument(help="The service, e.g. protocol-svc.")],
    services_dir: Annotated[
        Path | None,
        typer.Option(help="Directory holding the <name>-svc folders. Default: <repo>/services."),
    ] = None,
    max_seconds: Annotated[
        float, typer.Option(help="Stop reading the dead-letter topic after this long.", min=1)
    ] = 60.0,
) -> None:
    """Feed a service's dead letters back through its consumers once, with the settings
    ``run`` gives it (start ``run`` first, in another terminal)."""
    from rn623_devctl.runner import RunOptions
    from rn623_devctl.runner import replay_dead_letters as replay

    options = RunOptions(
        state=state_dir(), services_dir=(services_dir or repo_root() / "services").absolute()
    )
    raise typer.Exit(replay(options, service, max_seconds))
