"""The ``protocol.events`` v1 contracts: Kafka round trip, validators and error messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

import rn623_events.contracts  # noqa: F401  (registers every contract)
from rn623_events.contracts.protocols import (
    ComplaintRegistered,
    DemandAnswered,
    DemandReanalysisRequested,
    DemandRegistered,
    InteractionRecorded,
    ProtocolEvent,
    ProtocolOpened,
    RecordsPurged,
)
from rn623_events.dlq import describe_error
from rn623_events.envelope import make_envelope, parse_record
from rn623_events.registry import REGISTRY, Event

pytestmark = pytest.mark.unit

TOPIC = "protocol.events"
BRT = timezone(timedelta(hours=-3))
AMT = timezone(timedelta(hours=-4))
NUMBER = "12345620250303000042"
CPF = "52998224725"
DEMAND = uuid.UUID("0b6c5a56-3f6e-4a49-9f0e-6f7b1c2d3e4f")
REANALYSIS = uuid.UUID("5d1f0c7a-9a0e-4d8b-8a53-2f9b6c7d8e90")
T0 = datetime(2025, 3, 3, 9, 15, tzinfo=BRT)


def base(**fields: Any) -> dict[str, Any]:
    return {"protocol_number": NUMBER, "ans_registry": "123456", **fields}


EXAMPLES: dict[type[Event], dict[str, Any]] = {
    ProtocolOpened: base(
        layout_id="ans-default-20",
        channel="whatsapp",
        direction="inbound",
        opened_at=T0,
        timezone="America/Sao_Paulo",
        contact_id="cc-7781",
        beneficiary={
            "card_number": "0001234500012",
            "cpf": CPF,
            "name": "Maria da Silva",
            "email": "maria@example.com.br",
            "phone": "+5511912345678",
            "whatsapp": "+5511912345678",
            "preferred_channels": ["whatsapp", "email"],
        },
    ),
    DemandRegistered: base(
        demand_id=DEMAND,
        demand_type="assistance",
        category="consulta",
        description="Autorização de consulta com cardiologista",
        requested_at=T0,
        registered_at=T0 + timedelta(seconds=2),
        due_at=datetime(2025, 3, 10, 23, 59, 59, 999000, tzinfo=BRT),
        immediate=False,
        deadline_rule_id="deadline.assistance",
        deadline_legal_basis="RN 623/2024",
        deadline_unit="business_days",
        deadline_amount=5,
        ruleset_id="rn623-2025-07-01",
    ),
    DemandAnswered: base(
        demand_id=DEMAND,
        outcome="denied",
        text="Procedimento fora do rol de cobertura obrigatória do contrato.",
        legal_basis="Contrato, cláusula 7.2; RN 465/2021",
        answered_at=T0 + timedelta(days=2),
        answered_by="agent-17",
        reanalysis_allowed=True,
    ),
    DemandReanalysisRequested: base(
        demand_id=DEMAND,
        reanalysis_demand_id=REANALYSIS,
        requested_at=T0 + timedelta(days=3),
        registered_at=T0 + timedelta(days=3, seconds=1),
        due_at=datetime(2025, 3, 17, 23, 59, 59, 999000, tzinfo=BRT),
        deadline_rule_id="deadline.reanalysis",
        deadline_legal_basis="RN 623/2024",
    ),
    InteractionRecorded: base(
        interaction_id=uuid.uuid4(),
        kind="recording",
        occurred_at=T0,
        author=None,
        recording_uri="s3://recordings/2025/03/03/cc-7781.ogg",
        duration_seconds=312,
    ),
    ComplaintRegistered: base(
        complaint_id=uuid.uuid4(),
        source="nip",
        classification="cobertura",
        external_reference="NIP 4512389",
        received_at=T0 + timedelta(days=20),
        registered_at=T0 + timedelta(days=20, minutes=5),
        demand_id=DEMAND,
    ),
    RecordsPurged: base(
        purge_request_id=uuid.uuid4(),
        record_classes=["recording"],
        purged_at=datetime(2025, 6, 2, 3, 0, tzinfo=UTC),
        owner="protocol-svc",
        anonymized=False,
    ),
}


def example(model: type[Event], **changes: Any) -> dict[str, Any]:
    return {**EXAMPLES[model], **changes}


def errors(model: type[Event], data: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(location, message)`` of each validation error."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [
        (".".join(str(p) for p in e["loc"]), e["msg"])
        for e in caught.value.errors(include_input=False, include_url=False)
    ]


def test_every_design_type_is_registered_on_protocol_events() -> None:
    expected = {
        "protocol.opened": ProtocolOpened,
        "demand.registered": DemandRegistered,
        "demand.answered": DemandAnswered,
        "demand.reanalysis_requested": DemandReanalysisRequested,
        "interaction.recorded": InteractionRecorded,
        "complaint.registered": ComplaintRegistered,
        "records.purged": RecordsPurged,
    }
    assert {info.event_type: info.model for info in REGISTRY.on_topic(TOPIC)} == expected
    assert set(EXAMPLES) == set(expected.values())


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.event_type)
def test_valid_example_round_trips_through_kafka(model: type[Event]) -> None:
    event = model.model_validate(EXAMPLES[model])
    assert isinstance(event, ProtocolEvent)
    env = make_envelope(event, source="protocol-svc", time=datetime.now(UTC))
    assert env.topic == TOPIC
    assert env.key == NUMBER.encode()
    headers = dict(env.headers())
    assert headers["ce_type"] == model.event_type.encode()
    assert headers["ce_subject"] == NUMBER.encode()
    assert headers["ce_dataschema"] == f"urn:rn623:events:{TOPIC}:{model.event_type}:v1".encode()
    parsed = parse_record(TOPIC, env.key, env.value(), env.headers())
    decoded = parsed.decode()
    assert type(decoded) is model
    assert decoded == event


def test_times_keep_their_offset() -> None:
    event = ProtocolOpened.model_validate(EXAMPLES[ProtocolOpened])
    assert event.model_dump(mode="json")["opened_at"] == "2025-03-03T09:15:00-03:00"


def test_optional_fields_default() -> None:
    data = example(ProtocolOpened, beneficiary={}, contact_id=None)
    event = ProtocolOpened.model_validate(data)
    assert event.beneficiary.preferred_channels == ()
    assert event.beneficiary.cpf is None
    demand = {k: v for k, v in EXAMPLES[DemandRegistered].items() if k != "category"}
    registered = DemandRegistered.model_validate(demand)
    assert registered.reanalysis_of is None
    assert registered.category is None


# validators: each failure names its field


@pytest.mark.parametrize("legal_basis", [None, "omitted"])
def test_a_denial_needs_a_legal_basis(legal_basis: str | None) -> None:
    data = example(DemandAnswered, legal_basis=legal_basis)
    if legal_basis == "omitted":
        del data["legal_basis"]
    assert errors(DemandAnswered, data) == [
        ("legal_basis", "Value error, legal_basis is required when outcome is denied")
    ]


def test_other_outcomes_need_no_legal_basis() -> None:
    data = example(DemandAnswered, outcome="authorized", legal_basis=None, reanalysis_allowed=False)
    assert DemandAnswered.model_validate(data).legal_basis is None


@pytest.mark.parametrize(
    ("outcome", "allowed"),
    [("denied", False), ("partially_authorized", False), ("authorized", True), ("informed", True)],
)
def test_reanalysis_allowed_follows_the_outcome(outcome: str, allowed: bool) -> None:
    data = example(DemandAnswered, outcome=outcome, reanalysis_allowed=allowed)
    [(loc, msg)] = errors(DemandAnswered, data)
    assert loc == "reanalysis_allowed"
    assert "reanalysis_allowed" in msg


def test_a_recording_needs_its_uri() -> None:
    data = example(InteractionRecorded, recording_uri=None)
    assert errors(InteractionRecorded, data) == [
        ("recording_uri", "Value error, recording_uri is required when kind is recording")
    ]


@pytest.mark.parametrize("kind", ["transcript", "message", "note"])
def test_text_interactions_need_content(kind: str) -> None:
    data = example(InteractionRecorded, kind=kind, recording_uri=None, duration_seconds=None)
    [(loc, msg)] = errors(InteractionRecorded, data)
    assert loc == "content"
    assert f"content is required when kind is {kind}" in msg
    event = InteractionRecorded.model_validate({**data, "content": "Bom dia", "author": "agent"})
    assert event.content == "Bom dia"


@pytest.mark.parametrize("cpf", ["5299822472", "529982247250", "529.982.247-25"])
def test_cpf_must_be_eleven_normalized_digits(cpf: str) -> None:
    data = example(ProtocolOpened, beneficiary={"cpf": cpf})
    [(loc, msg)] = errors(ProtocolOpened, data)
    assert loc == "beneficiary.cpf"
    assert "pattern" in msg


@pytest.mark.parametrize("cpf", ["52998224726", "11111111111"])
def test_cpf_check_digits_are_verified(cpf: str) -> None:
    data = example(ProtocolOpened, beneficiary={"cpf": cpf})
    with pytest.raises(ValidationError) as caught:
        ProtocolOpened.model_validate(data)
    text = describe_error(caught.value)
    assert text.startswith("beneficiary.cpf: ")
    assert "check digits" in text
    assert cpf not in text  # dead-letter reasons carry no personal data


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (ProtocolOpened, "opened_at"),
        (DemandRegistered, "due_at"),
        (DemandAnswered, "answered_at"),
        (DemandReanalysisRequested, "requested_at"),
        (InteractionRecorded, "occurred_at"),
        (ComplaintRegistered, "received_at"),
        (RecordsPurged, "purged_at"),
    ],
)
def test_naive_datetimes_are_refused(model: type[Event], field: str) -> None:
    naive = datetime(2025, 3, 3, 9, 15)
    [(loc, msg)] = errors(model, example(model, **{field: naive}))
    assert loc == field
    assert "timezone" in msg


def test_opened_at_carries_the_operator_offset() -> None:
    data = example(ProtocolOpened, opened_at=T0.astimezone(UTC))
    [(loc, msg)] = errors(ProtocolOpened, data)
    assert loc == "timezone"
    assert "opened_at" in msg
    manaus = example(ProtocolOpened, opened_at=T0.astimezone(AMT), timezone="America/Manaus")
    assert ProtocolOpened.model_validate(manaus).opened_at == T0


@pytest.mark.parametrize("model", [DemandRegistered, DemandReanalysisRequested])
def test_deadline_cannot_precede_the_request(model: type[Event]) -> None:
    data = example(model)
    data["due_at"] = data["requested_at"] - timedelta(hours=1)
    [(loc, msg)] = errors(model, data)
    assert loc == "due_at"
    assert "requested_at" in msg


def test_a_late_registration_may_be_already_overdue() -> None:
    data = example(DemandRegistered, registered_at=T0 + timedelta(days=30))
    event = DemandRegistered.model_validate(data)
    assert event.due_at < event.registered_at


def test_reanalysis_of_only_on_reanalysis_demands() -> None:
    data = example(DemandRegistered, reanalysis_of=DEMAND)
    [(loc, msg)] = errors(DemandRegistered, data)
    assert loc == "reanalysis_of"
    assert "demand_type is reanalysis" in msg
    ok = example(DemandRegistered, demand_type="reanalysis", reanalysis_of=DEMAND)
    assert DemandRegistered.model_validate(ok).reanalysis_of == DEMAND


def test_reanalysis_is_a_new_demand() -> None:
    data = example(DemandReanalysisRequested, reanalysis_demand_id=DEMAND)
    [(loc, _)] = errors(DemandReanalysisRequested, data)
    assert loc == "reanalysis_demand_id"


@pytest.mark.parametrize("classes", [[], ["recording", "recording"], ["tape"]])
def test_record_classes_are_distinct_known_and_not_empty(classes: list[str]) -> None:
    locs = {
        loc.split(".")[0]
        for loc, _ in errors(RecordsPurged, example(RecordsPurged, record_classes=classes))
    }
    assert locs == {"record_classes"}


@pytest.mark.parametrize(
    ("model", "changes", "field"),
    [
        (ProtocolOpened, {"protocol_number": "1234562025030300004"}, "protocol_number"),
        (ProtocolOpened, {"protocol_number": "12345620250303000042X"}, "protocol_number"),
        (ProtocolOpened, {"ans_registry": "12345"}, "ans_registry"),
        (ProtocolOpened, {"channel": "fax"}, "channel"),
        (ProtocolOpened, {"timezone": "Europe/Lisbon"}, "timezone"),
        (ProtocolOpened, {"beneficiary": {"phone": "11912345678"}}, "beneficiary.phone"),
        (ProtocolOpened, {"beneficiary": {"preferred_channels": ["fax"]}}, "beneficiary"),
        (DemandRegistered, {"demand_type": "other"}, "demand_type"),
        (DemandRegistered, {"deadline_unit": "days"}, "deadline_unit"),
        (DemandRegistered, {"deadline_amount": -1}, "deadline_amount"),
        (DemandRegistered, {"demand_id": "not-a-uuid"}, "demand_id"),
        (DemandAnswered, {"outcome": "em_analise"}, "outcome"),
        (DemandAnswered, {"text": ""}, "text"),
        (InteractionRecorded, {"duration_seconds": -1}, "duration_seconds"),
        (InteractionRecorded, {"author": "bot"}, "author"),
        (InteractionRecorded, {"recording_uri": "no scheme"}, "recording_uri"),
        (ComplaintRegistered, {"source": "twitter"}, "source"),
        (RecordsPurged, {"owner": "Protocol Svc"}, "owner"),
    ],
)
def test_invalid_fields_are_named(model: type[Event], changes: dict[str, Any], field: str) -> None:
    locs = [loc for loc, _ in errors(model, example(model, **changes))]
    assert locs
    assert all(loc.startswith(field) for loc in locs), locs
