"""Unit tests of service discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from rn623_devctl.services import ServiceConfigError, discover_services

pytestmark = pytest.mark.unit


def _service(root: Path, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "pyproject.toml").write_text(body)


def test_discovers_services_sorted_by_port(tmp_path: Path) -> None:
    _service(tmp_path, "deadline-svc", '[tool.rn623]\nport = 8002\npackage = "deadline_svc"\n')
    _service(tmp_path, "protocol-svc", '[tool.rn623]\nport = 8001\npackage = "protocol_svc"\n')
    _service(tmp_path, "notes-svc", '[project]\nname = "not-a-service"\n')
    _service(tmp_path, "shared", '[tool.rn623]\nport = 8009\npackage = "shared"\n')
    found = discover_services(tmp_path)
    assert [(s.name, s.port, s.database) for s in found] == [
        ("protocol-svc", 8001, "protocol_svc"),
        ("deadline-svc", 8002, "deadline_svc"),
    ]
    assert not found[0].has_migrations


def test_missing_directory_means_no_services(tmp_path: Path) -> None:
    assert discover_services(tmp_path / "nope") == []


@pytest.mark.parametrize(
    "body",
    [
        '[tool.rn623]\nport = "8001"\npackage = "a_svc"\n',
        '[tool.rn623]\nport = 80\npackage = "a_svc"\n',
        '[tool.rn623]\nport = 8001\npackage = "A-svc"\n',
        "[tool.rn623]\nport = 8001\n",
    ],
)
def test_invalid_declarations_are_refused(tmp_path: Path, body: str) -> None:
    _service(tmp_path, "a-svc", body)
    with pytest.raises(ServiceConfigError):
        discover_services(tmp_path)


def test_duplicate_ports_are_refused(tmp_path: Path) -> None:
    _service(tmp_path, "a-svc", '[tool.rn623]\nport = 8001\npackage = "a_svc"\n')
    _service(tmp_path, "b-svc", '[tool.rn623]\nport = 8001\npackage = "b_svc"\n')
    with pytest.raises(ServiceConfigError, match="both use port 8001"):
        discover_services(tmp_path)
