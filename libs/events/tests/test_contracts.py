"""Contract snapshots: every contract is snapshotted, compatible and in the AsyncAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import rn623_events.contracts  # noqa: F401  (registers every contract)
from rn623_events.__main__ import main
from rn623_events.asyncapi import asyncapi_document, message_name
from rn623_events.registry import (
    REGISTRY,
    AmbiguousEventError,
    Event,
    Registry,
    UnknownEventError,
    contract,
    json_schema,
)
from rn623_events.snapshots import (
    ASYNCAPI_FILE,
    SNAPSHOT_DIR,
    SNAPSHOT_HINT,
    check_snapshots,
    snapshot_filename,
    write_snapshots,
)

pytestmark = pytest.mark.unit

REGENERATE = f"the AsyncAPI document is out of date; {SNAPSHOT_HINT}"


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value in a JSON-like tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON Pointer inside ``document``; ``KeyError`` if it dangles."""
    assert ref.startswith("#/"), f"non-local $ref {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# the committed snapshots


def test_every_contract_has_a_compatible_snapshot() -> None:
    assert len(REGISTRY) > 0
    report = check_snapshots(REGISTRY, SNAPSHOT_DIR)
    assert not report.missing, "\n".join(report.problems())
    assert not report.incompatible, "\n".join(report.problems())


def test_no_snapshot_belongs_to_a_removed_contract() -> None:
    report = check_snapshots(REGISTRY, SNAPSHOT_DIR)
    assert not report.stale, "\n".join(report.problems())


def test_asyncapi_document_is_structurally_valid() -> None:
    document = asyncapi_document()
    for key in ("asyncapi", "info", "servers", "channels", "operations", "components"):
        assert key in document
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "RN 623 platform events"
    for ref in refs(document):
        resolve(document, ref)
    messages = document["components"]["messages"]
    for info in REGISTRY:
        name = message_name(info)
        assert name in messages
        assert name in document["channels"][info.topic]["messages"]
        assert messages[name]["contentType"] == "application/json"
        assert "$defs" not in json.dumps(messages[name])
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
        channel = resolve(document, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert resolve(document, message["$ref"]) in channel["messages"].values()
    for spec_name, channel in document["channels"].items():
        assert channel["address"] == spec_name


def test_asyncapi_document_equals_the_committed_file() -> None:
    path = SNAPSHOT_DIR / ASYNCAPI_FILE
    assert path.exists(), REGENERATE
    committed = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert committed == asyncapi_document(), REGENERATE


def test_every_send_operation_belongs_to_the_topic_owner() -> None:
    document = asyncapi_document()
    sends = [op for op in document["operations"].values() if op["action"] == "send"]
    assert len(sends) == len(document["channels"])


# the snapshot machinery, on a synthetic registry


def _registry(*, extra_field: bool = False, required: bool = False) -> Registry:
    registry = Registry()

    if required:

        class Thing(Event):
            """A thing happened."""

            thing_id: str
            size: int

    elif extra_field:

        class Thing(Event):  # type: ignore[no-redef]
            """A thing happened."""

            thing_id: str
            note: str | None = None

    else:

        class Thing(Event):  # type: ignore[no-redef]
            """A thing happened."""

            thing_id: str

    contract("thing.happened", version=1, topic="operator.events", registry=registry)(Thing)
    return registry


def test_a_new_contract_without_snapshot_fails_with_the_hint(tmp_path: Path) -> None:
    report = check_snapshots(_registry(), tmp_path)
    assert report.missing == ["operator.events/thing.happened.v1.json"]
    assert SNAPSHOT_HINT in report.problems()[0]
    assert "uv run python -m rn623_events snapshot" in SNAPSHOT_HINT


def test_snapshot_round_trip_and_compatible_evolution(tmp_path: Path) -> None:
    write_snapshots(_registry(), tmp_path)
    assert (tmp_path / "operator.events/thing.happened.v1.json").exists()
    assert (tmp_path / ASYNCAPI_FILE).exists()
    assert check_snapshots(_registry(), tmp_path).problems() == []
    assert check_snapshots(_registry(extra_field=True), tmp_path).problems() == []
    write_snapshots(_registry(extra_field=True), tmp_path)  # records the optional field


def test_an_incompatible_change_fails_and_is_not_snapshotted(tmp_path: Path) -> None:
    write_snapshots(_registry(), tmp_path)
    before = (tmp_path / "operator.events/thing.happened.v1.json").read_text()
    report = check_snapshots(_registry(required=True), tmp_path)
    assert any("$.size: required property added" in p for p in report.problems())
    with pytest.raises(ValueError, match="new contract version"):
        write_snapshots(_registry(required=True), tmp_path)
    assert (tmp_path / "operator.events/thing.happened.v1.json").read_text() == before


def test_a_removed_contract_whose_snapshot_exists_fails(tmp_path: Path) -> None:
    write_snapshots(_registry(), tmp_path)
    report = check_snapshots(Registry(), tmp_path)
    assert report.stale == ["operator.events/thing.happened.v1.json"]
    assert "never deleted" in report.problems()[0]
    with pytest.raises(ValueError, match="never deleted"):
        write_snapshots(Registry(), tmp_path)


# the registry is keyed by topic too


def _twin_registry() -> tuple[Registry, type[Event], type[Event]]:
    """One type name on two topics, each with its own model."""
    registry = Registry()

    @contract("thing.happened", version=1, topic="operator.events", registry=registry)
    class OperatorThing(Event):
        """A thing happened to an operator."""

        ans_registry: str

    @contract("thing.happened", version=1, topic="protocol.events", registry=registry)
    class ProtocolThing(Event):
        """A thing happened to a protocol."""

        protocol_number: str

    return registry, OperatorThing, ProtocolThing


def test_one_type_on_two_topics_is_two_contracts() -> None:
    registry, operator_thing, protocol_thing = _twin_registry()
    assert len(registry) == 2
    assert registry.get("thing.happened", 1, topic="operator.events").model is operator_thing
    assert registry.get("thing.happened", 1, topic="protocol.events").model is protocol_thing
    assert ("protocol.events", "thing.happened", 1) in registry
    assert ("thing.happened", 1) in registry
    assert ("thing.happened", 2) not in registry
    assert [info.model for info in registry.on_topic("protocol.events")] == [protocol_thing]


def test_lookup_without_topic_needs_a_unique_match() -> None:
    registry, *_ = _twin_registry()
    with pytest.raises(AmbiguousEventError, match=r"operator\.events, protocol\.events"):
        registry.get("thing.happened", 1)
    with pytest.raises(UnknownEventError, match=r"on topic igr\.events"):
        registry.get("thing.happened", 1, topic="igr.events")
    with pytest.raises(UnknownEventError, match=r"thing\.happened v2"):
        registry.get("thing.happened", 2)
    assert REGISTRY.get("operator.upserted", 1).topic == "operator.events"


def test_a_second_model_for_the_same_key_is_refused() -> None:
    registry, *_ = _twin_registry()

    class Other(Event):
        """Another thing."""

    with pytest.raises(ValueError, match=r"already registered on operator\.events"):
        contract("thing.happened", version=1, topic="operator.events", registry=registry)(Other)


def test_twins_get_distinct_snapshots_schemas_and_messages(tmp_path: Path) -> None:
    registry, *_ = _twin_registry()
    infos = list(registry)
    assert len({snapshot_filename(info) for info in infos}) == 2
    assert len({info.dataschema for info in infos}) == 2
    assert len({message_name(info) for info in infos}) == 2
    write_snapshots(registry, tmp_path)
    assert (tmp_path / "operator.events" / "thing.happened.v1.json").exists()
    assert (tmp_path / "protocol.events" / "thing.happened.v1.json").exists()
    assert check_snapshots(registry, tmp_path).problems() == []
    document = asyncapi_document(registry)
    assert set(document["components"]["messages"]) == {
        "operator.events.thing.happened.v1",
        "protocol.events.thing.happened.v1",
    }
    for ref in refs(document):
        resolve(document, ref)


def test_a_snapshot_at_a_legacy_flat_path_is_stale(tmp_path: Path) -> None:
    write_snapshots(_registry(), tmp_path)
    (tmp_path / "thing.happened.v1.json").write_text("{}")
    assert check_snapshots(_registry(), tmp_path).stale == ["thing.happened.v1.json"]


def test_committed_snapshot_names_and_message_names_are_unique() -> None:
    infos = list(REGISTRY)
    assert len({snapshot_filename(info) for info in infos}) == len(infos)
    assert len({message_name(info) for info in infos}) == len(infos)
    assert len({info.dataschema for info in infos}) == len(infos)
    topics_of = {}
    for info in infos:
        topics_of.setdefault(info.event_type, set()).add(info.topic)
    assert topics_of["demand.answered"] == {"protocol.events", "contact-center.inbound"}
    assert topics_of["interaction.recorded"] == {"protocol.events", "contact-center.inbound"}


# the command line


def test_cli_exports_schemas(tmp_path: Path) -> None:
    assert main(["schemas", "-o", str(tmp_path)]) == 0
    for info in REGISTRY:
        exported = json.loads((tmp_path / snapshot_filename(info)).read_text())
        assert exported == json_schema(info)


def test_cli_writes_asyncapi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "asyncapi.yaml"
    assert main(["asyncapi", "-o", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == asyncapi_document()
    assert main(["asyncapi"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == asyncapi_document()


def test_cli_snapshot_into_a_directory(tmp_path: Path) -> None:
    assert main(["snapshot", "--dir", str(tmp_path)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted([ASYNCAPI_FILE, *(snapshot_filename(info) for info in REGISTRY)])
