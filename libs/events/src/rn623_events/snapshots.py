"""Committed snapshots of every contract's JSON Schema and of the AsyncAPI document.

Snapshots live in ``libs/events/contracts/``: ``<topic>/<type>.v<version>.json`` per
contract plus ``asyncapi.yaml``. The topic is always part of the path, because one type
name may exist on two topics (``demand.answered`` on ``protocol.events`` and on
``contact-center.inbound``) and a path must not change when such a twin is added later.
Contracts are never deleted, only new versions added, and a snapshot is only ever
replaced by a compatible schema (see ``schema_compat``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rn623_events.asyncapi import asyncapi_document, render_asyncapi
from rn623_events.registry import REGISTRY, ContractInfo, Registry, json_schema
from rn623_events.schema_compat import incompatibilities

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "contracts"
ASYNCAPI_FILE = "asyncapi.yaml"
SNAPSHOT_HINT = "run `uv run python -m rn623_events snapshot`"


def snapshot_filename(info: ContractInfo) -> str:
    """Path of a contract's snapshot, relative to the snapshot directory.

    ``<topic>/<type>.v<version>.json`` (POSIX separators), unique per registry key.
    """
    return f"{info.topic}/{info.event_type}.v{info.version}.json"


def render_schema(info: ContractInfo) -> str:
    """The contract's JSON Schema as the text stored in its snapshot."""
    return json.dumps(json_schema(info), indent=2, ensure_ascii=False) + "\n"


def read_snapshots(directory: Path = SNAPSHOT_DIR) -> dict[str, dict[str, Any]]:
    """Every JSON snapshot under ``directory``, keyed by its relative POSIX path.

    Files at any depth are read, so a snapshot left at an outdated path is reported as
    stale rather than silently ignored.
    """
    if not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.rglob("*.json"))
    }


@dataclass
class SnapshotReport:
    """Differences between the registry and the committed snapshots."""

    missing: list[str] = field(default_factory=list)
    incompatible: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Human-readable problems, each with the way to fix it."""
        return (
            [f"{name}: no snapshot; {SNAPSHOT_HINT}" for name in self.missing]
            + [f"{line} (incompatible: add a new contract version)" for line in self.incompatible]
            + [
                f"{name}: snapshot of a contract that no longer exists "
                "(contracts are never deleted, only new versions added)"
                for name in self.stale
            ]
        )


def check_snapshots(
    registry: Registry = REGISTRY, directory: Path = SNAPSHOT_DIR
) -> SnapshotReport:
    """Compare every registered contract with its snapshot."""
    snapshots = read_snapshots(directory)
    report = SnapshotReport()
    names: set[str] = set()
    for info in registry:
        name = snapshot_filename(info)
        names.add(name)
        if name not in snapshots:
            report.missing.append(name)
            continue
        report.incompatible.extend(
            f"{name} {problem}" for problem in incompatibilities(snapshots[name], json_schema(info))
        )
    report.stale = sorted(set(snapshots) - names)
    return report


def write_snapshots(registry: Registry = REGISTRY, directory: Path = SNAPSHOT_DIR) -> list[Path]:
    """Rewrite the snapshots and ``asyncapi.yaml``; refuse incompatible or deleted contracts."""
    report = check_snapshots(registry, directory)
    if report.incompatible or report.stale:
        problems = report.problems()[len(report.missing) :]
        raise ValueError("snapshots not written:\n" + "\n".join(problems))
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for info in registry:
        path = directory / snapshot_filename(info)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_schema(info), encoding="utf-8")
        written.append(path)
    path = directory / ASYNCAPI_FILE
    path.write_text(render_asyncapi(asyncapi_document(registry)), encoding="utf-8")
    written.append(path)
    return written
