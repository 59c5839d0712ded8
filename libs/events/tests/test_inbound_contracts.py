"""The ``contact-center.inbound`` v1 contracts, and type names shared with protocol.events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

import rn623_events.contracts  # noqa: F401  (registers every contract)
from rn623_events.contracts.inbound import (
    ComplaintReceived,
    ContactOpened,
    InboundDemandAnswered,
    InboundEvent,
    InboundInteractionRecorded,
)
from rn623_events.contracts.protocols import DemandAnswered, InteractionRecorded
from rn623_events.dlq import describe_error
from rn623_events.envelope import make_envelope, parse_record
from rn623_events.registry import REGISTRY, AmbiguousEventError, Event, UnknownEventError

pytestmark = pytest.mark.unit

TOPIC = "contact-center.inbound"
BRT = timezone(timedelta(hours=-3))
CONTACT = "genesys:7f3a-99c1"
NUMBER = "12345620250303000042"
DEMAND = uuid.UUID("0b6c5a56-3f6e-4a49-9f0e-6f7b1c2d3e4f")
T0 = datetime(2025, 3, 3, 9, 15, tzinfo=BRT)


def base(**fields: Any) -> dict[str, Any]:
    return {"ans_registry": "123456", "contact_id": CONTACT, **fields}


EXAMPLES: dict[type[Event], dict[str, Any]] = {
    ContactOpened: base(
        channel="phone",
        direction="inbound",
        occurred_at=T0,
        beneficiary={
            "card_number": "0001234500012",
            "cpf": "529.982.247-25",
            "name": "Maria da Silva",
            "email": " maria@example.com.br ",
            "phone": "(11) 91234-5678",
            "whatsapp": "+55 11 91234-5678",
            "preferred_channels": ["sms"],
        },
        demand={
            "demand_type": "urgent_emergency",
            "category": "internacao",
            "description": "Paciente em pronto-socorro aguardando autorização",
            "requested_at": T0,
        },
    ),
    InboundInteractionRecorded: base(
        kind="transcript",
        occurred_at=T0,
        author="agent",
        content="Agente: bom dia. Beneficiária: preciso de autorização.",
    ),
    InboundDemandAnswered: base(
        demand_ref={"protocol_number": NUMBER, "demand_id": str(DEMAND)},
        outcome="denied",
        text="Procedimento sem cobertura contratual.",
        legal_basis="Contrato, cláusula 7.2",
        answered_at=T0 + timedelta(days=1),
    ),
    ComplaintReceived: base(
        source="procon",
        classification="reajuste",
        external_reference="PROCON-SP 2025/001122",
        received_at=T0,
        protocol_number=None,
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


def test_every_design_type_is_registered_on_the_inbound_topic() -> None:
    expected = {
        "contact.opened": ContactOpened,
        "interaction.recorded": InboundInteractionRecorded,
        "demand.answered": InboundDemandAnswered,
        "complaint.received": ComplaintReceived,
    }
    assert {info.event_type: info.model for info in REGISTRY.on_topic(TOPIC)} == expected
    for model in expected.values():
        assert "dead-letter" in (model.__doc__ or "")


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.event_type)
def test_valid_example_round_trips_through_kafka(model: type[Event]) -> None:
    event = model.model_validate(EXAMPLES[model])
    assert isinstance(event, InboundEvent)
    env = make_envelope(event, source="contact-center/genesys", time=datetime.now(UTC))
    assert env.topic == TOPIC
    assert env.key == CONTACT.encode()
    parsed = parse_record(TOPIC, env.key, env.value(), env.headers())
    decoded = parsed.decode()
    assert type(decoded) is model
    assert decoded == event


def test_raw_contact_data_is_kept_as_captured() -> None:
    event = ContactOpened.model_validate(EXAMPLES[ContactOpened])
    assert event.beneficiary.cpf == "529.982.247-25"
    assert event.beneficiary.phone == "(11) 91234-5678"
    bare = ContactOpened.model_validate(example(ContactOpened, beneficiary={"cpf": "52998224725"}))
    assert bare.beneficiary.cpf == "52998224725"
    minimal = ContactOpened.model_validate(example(ContactOpened, beneficiary={}, demand=None))
    assert minimal.demand is None


# validators: each failure names its field (the dead-letter reason)


def test_a_denial_needs_a_legal_basis() -> None:
    data = example(InboundDemandAnswered)
    del data["legal_basis"]
    assert errors(InboundDemandAnswered, data) == [
        ("legal_basis", "Value error, legal_basis is required when outcome is denied")
    ]
    data["outcome"] = "resolved"
    assert InboundDemandAnswered.model_validate(data).legal_basis is None


def test_a_recording_needs_its_uri() -> None:
    data = example(InboundInteractionRecorded, kind="recording", content=None)
    assert errors(InboundInteractionRecorded, data) == [
        ("recording_uri", "Value error, recording_uri is required when kind is recording")
    ]
    data["recording_uri"] = "https://cc.example.com/rec/7f3a-99c1.wav"
    assert InboundInteractionRecorded.model_validate(data).content is None


def test_a_note_needs_content() -> None:
    data = example(InboundInteractionRecorded, kind="note", content=None)
    [(loc, msg)] = errors(InboundInteractionRecorded, data)
    assert loc == "content"
    assert "content is required when kind is note" in msg


@pytest.mark.parametrize("cpf", ["529.982.247-2", "5299822472", "529.982.247-255", "529x98224725"])
def test_bad_cpf_shape_is_named_without_its_value(cpf: str) -> None:
    data = example(ContactOpened, beneficiary={"cpf": cpf})
    with pytest.raises(ValidationError) as caught:
        ContactOpened.model_validate(data)
    reason = describe_error(caught.value)
    assert reason.startswith("beneficiary.cpf: ")
    assert cpf not in reason


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (ContactOpened, "occurred_at"),
        (InboundInteractionRecorded, "occurred_at"),
        (InboundDemandAnswered, "answered_at"),
        (ComplaintReceived, "received_at"),
    ],
)
def test_naive_datetimes_are_refused(model: type[Event], field: str) -> None:
    [(loc, msg)] = errors(model, example(model, **{field: "2025-03-03T09:15:00"}))
    assert loc == field
    assert "timezone" in msg


def test_naive_first_demand_time_is_refused() -> None:
    demand = {**EXAMPLES[ContactOpened]["demand"], "requested_at": "2025-03-03T09:15:00"}
    [(loc, _)] = errors(ContactOpened, example(ContactOpened, demand=demand))
    assert loc == "demand.requested_at"


@pytest.mark.parametrize(
    ("model", "changes", "field"),
    [
        (ContactOpened, {"contact_id": ""}, "contact_id"),
        (ContactOpened, {"ans_registry": "12345a"}, "ans_registry"),
        (ContactOpened, {"beneficiary": {"phone": "call me"}}, "beneficiary.phone"),
        (ContactOpened, {"beneficiary": {"email": "maria"}}, "beneficiary.email"),
        (ContactOpened, {"demand": {"demand_type": "other"}}, "demand.demand_type"),
        (InboundDemandAnswered, {"demand_ref": {"protocol_number": NUMBER}}, "demand_ref"),
        (ComplaintReceived, {"protocol_number": "42"}, "protocol_number"),
        (ComplaintReceived, {"source": "reclame_aqui"}, "source"),
    ],
)
def test_invalid_fields_are_named(model: type[Event], changes: dict[str, Any], field: str) -> None:
    locs = [loc for loc, _ in errors(model, example(model, **changes))]
    assert locs
    assert all(loc.startswith(field) for loc in locs), locs


# one type name, two topics


def test_same_type_name_decodes_by_topic() -> None:
    inbound = make_envelope(
        InboundDemandAnswered.model_validate(EXAMPLES[InboundDemandAnswered]),
        source="contact-center/genesys",
        time=T0,
    )
    fact = make_envelope(
        DemandAnswered(
            protocol_number=NUMBER,
            ans_registry="123456",
            demand_id=DEMAND,
            outcome="denied",
            text="Procedimento sem cobertura contratual.",
            legal_basis="Contrato, cláusula 7.2",
            answered_at=T0 + timedelta(days=1),
            reanalysis_allowed=True,
        ),
        source="protocol-svc",
        time=T0,
    )
    assert inbound.type == fact.type == "demand.answered"
    assert inbound.dataschema != fact.dataschema
    for env, model in ((inbound, InboundDemandAnswered), (fact, DemandAnswered)):
        parsed = parse_record(env.topic, env.key, env.value(), env.headers())
        assert type(parsed.decode()) is model
    # the inbound payload read as if it were on protocol.events fails validation
    stray = parse_record("protocol.events", inbound.key, inbound.value(), inbound.headers())
    with pytest.raises(ValidationError):
        stray.decode()


def test_interaction_recorded_exists_on_both_topics() -> None:
    assert REGISTRY.get("interaction.recorded", 1, topic=TOPIC).model is InboundInteractionRecorded
    assert (
        REGISTRY.get("interaction.recorded", 1, topic="protocol.events").model
        is InteractionRecorded
    )
    with pytest.raises(AmbiguousEventError, match="pass topic="):
        REGISTRY.get("interaction.recorded", 1)


def test_a_type_on_the_wrong_topic_is_unknown() -> None:
    env = make_envelope(
        ComplaintReceived.model_validate(EXAMPLES[ComplaintReceived]),
        source="contact-center/genesys",
        time=T0,
    )
    parsed = parse_record("protocol.events", env.key, env.value(), env.headers())
    with pytest.raises(
        UnknownEventError, match=r"complaint\.received v1 on topic protocol\.events"
    ):
        parsed.decode()
    assert json.loads(env.value())["source"] == "procon"
