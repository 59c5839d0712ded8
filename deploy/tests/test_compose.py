"""docker-compose.yml: `docker-compose config` when the binary exists, and always the
Compose Specification JSON schema (vendored, see schemas/SOURCES.md) plus policy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "no docker-compose binary on PATH (Debian package docker-compose); "
            "the file is validated against the Compose Specification schema instead"
        )
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_every_service_has_migrate_api_and_worker(
    compose: dict[str, Any], services: list[Any]
) -> None:
    defined = compose["services"]
    for svc in services:
        for role in ("migrate", "api", "worker"):
            entry = defined.get(f"{svc.name}-{role}")
            assert entry is not None, f"{svc.name}-{role} missing from docker-compose.yml"
            assert entry["build"]["dockerfile"] == f"services/{svc.name}/Dockerfile"
            assert entry["build"]["context"] == "."
            assert entry["command"] == [role]
        api = defined[f"{svc.name}-api"]
        assert f"127.0.0.1:{svc.port}:{svc.port}" in api["ports"]
        assert "healthcheck" in api
        for role in ("api", "worker"):
            deps = defined[f"{svc.name}-{role}"]["depends_on"]
            assert deps[f"{svc.name}-migrate"]["condition"] == "service_completed_successfully"
            assert deps["kafka"]["condition"] == "service_healthy"
        migrate_deps = defined[f"{svc.name}-migrate"]["depends_on"]
        assert migrate_deps["postgres"]["condition"] == "service_healthy"


def test_infrastructure_is_present(compose: dict[str, Any], services: list[Any]) -> None:
    defined = compose["services"]
    assert defined["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in defined["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    for name in ("postgres", "otel-collector", "prometheus", "grafana", "mailpit", "kafka-topics"):
        assert name in defined, name
    databases = defined["postgres"]["environment"]["RN623_DATABASES"].split(",")
    assert sorted(databases) == sorted(s.database for s in services)


def test_every_published_port_is_bound_to_localhost(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str), (name, port)
            assert port.startswith("127.0.0.1:"), (name, port)


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)
