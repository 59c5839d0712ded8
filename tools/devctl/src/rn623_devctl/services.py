"""Service discovery: every ``services/<name>-svc/`` whose pyproject declares ``[tool.rn623]``."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rn623_devinfra.databases import validate_database_name


class ServiceConfigError(ValueError):
    """A service directory does not follow the convention."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service to run: its directory, HTTP port and Python package (= database name)."""

    name: str
    directory: Path
    port: int
    package: str

    @property
    def database(self) -> str:
        """The service's database name (its package name)."""
        return self.package

    @property
    def has_migrations(self) -> bool:
        """True when an ``alembic.ini`` sits at the service root."""
        return (self.directory / "alembic.ini").is_file()

    def api_command(self, host: str, port: int | None = None) -> list[str]:
        """The uvicorn command line of the service's api on ``host`` and ``port``."""
        return [
            sys.executable, "-m", "uvicorn", f"{self.package}.app:create_app", "--factory",
            "--host", host, "--port", str(port or self.port),
        ]  # fmt: skip

    def worker_command(self) -> list[str]:
        """The command line of the service's worker."""
        return [sys.executable, "-m", f"{self.package}.worker"]


def service_env(
    spec: ServiceSpec,
    base: Mapping[str, str],
    *,
    database_url: str,
    bootstrap_servers: str,
    secret: str | None,
) -> dict[str, str]:
    """The environment of a service's processes: ``base`` plus its ``src/`` on PYTHONPATH,
    its name, database, broker and (unless tokens come from elsewhere) the JWT secret."""
    env = dict(base)
    src = str(spec.directory / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.update(
        SERVICE_NAME=spec.name,
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        PYTHONUNBUFFERED="1",
    )
    if secret is not None:
        env["JWT_SECRET"] = secret
    return env


def load_service(directory: Path) -> ServiceSpec | None:
    """Read ``[tool.rn623]`` from ``directory/pyproject.toml``; None when it has no such table."""
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return None
    with pyproject.open("rb") as handle:
        data = tomllib.load(handle)
    section = data.get("tool", {}).get("rn623")
    if section is None:
        return None
    port, package = section.get("port"), section.get("package")
    if not isinstance(port, int) or not 1024 <= port <= 65535:
        raise ServiceConfigError(f"{pyproject}: [tool.rn623] port must be an int in 1024-65535")
    if not isinstance(package, str):
        raise ServiceConfigError(f"{pyproject}: [tool.rn623] package must be a string")
    try:
        validate_database_name(package)
    except ValueError as exc:
        raise ServiceConfigError(f"{pyproject}: {exc}") from exc
    return ServiceSpec(
        name=directory.name, directory=directory.absolute(), port=port, package=package
    )


def discover_services(services_dir: Path) -> list[ServiceSpec]:
    """All services under ``services_dir`` (``*-svc`` folders), sorted by port."""
    if not services_dir.is_dir():
        return []
    found = [
        spec
        for child in sorted(services_dir.glob("*-svc"))
        if child.is_dir() and (spec := load_service(child)) is not None
    ]
    ports: dict[int, str] = {}
    packages: dict[str, str] = {}
    for spec in found:
        if spec.port in ports:
            raise ServiceConfigError(
                f"{spec.name} and {ports[spec.port]} both use port {spec.port}"
            )
        if spec.package in packages:
            raise ServiceConfigError(
                f"{spec.name} and {packages[spec.package]} both use package {spec.package}"
            )
        ports[spec.port] = spec.name
        packages[spec.package] = spec.name
    return sorted(found, key=lambda spec: spec.port)
