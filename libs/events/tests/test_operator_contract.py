"""The ``operator.upserted`` v1 contract: validation rules and key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from rn623_events.contracts.operators import (
    UF,
    UF_IBGE_CODES,
    BrazilTimeZone,
    ExtraHoliday,
    OperatorUpserted,
)
from rn623_events.registry import REGISTRY

pytestmark = pytest.mark.unit


def payload(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ans_registry": "654321",
        "name": "Odonto Norte",
        "segment": "dental",
        "modality": "odontologia_de_grupo",
        "beneficiaries": 0,
        "uf": "AM",
        "municipality_ibge": "1302603",
        "timezone": "America/Manaus",
        "revision": 1,
        "updated_at": "2025-03-01T09:30:00-04:00",
    }
    data.update(changes)
    return data


def test_registered_on_operator_events() -> None:
    info = REGISTRY.get("operator.upserted", 1)
    assert info.model is OperatorUpserted
    assert info.topic == "operator.events"


def test_defaults_and_subject() -> None:
    event = OperatorUpserted.model_validate(payload())
    assert event.subject() == "654321"
    assert event.protocol_layout == "ans-default-20"
    assert event.extra_holidays == ()


def test_reference_data_is_complete() -> None:
    assert len(get_args(UF)) == 27
    assert set(UF_IBGE_CODES) == set(get_args(UF))
    assert len(get_args(BrazilTimeZone)) == 16


@pytest.mark.parametrize(
    "changes",
    [
        {"ans_registry": "12345"},
        {"ans_registry": "1234567"},
        {"ans_registry": "12345a"},
        {"segment": "vision"},
        {"modality": "medicina de grupo"},
        {"beneficiaries": -1},
        {"uf": "XX"},
        {"municipality_ibge": "130260"},
        {"municipality_ibge": "3550308"},  # São Paulo is not in AM
        {"timezone": "America/Lima"},
        {"revision": 0},
        {"updated_at": "2025-03-01T09:30:00"},
        {"name": ""},
        {
            "extra_holidays": [
                {"date": "2025-10-24", "name": "A"},
                {"date": "2025-10-24", "name": "B"},
            ]
        },
    ],
)
def test_invalid_payloads_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OperatorUpserted.model_validate(payload(**changes))


def test_serializes_to_json_with_offset() -> None:
    event = OperatorUpserted.model_validate(
        payload(extra_holidays=[{"date": "2025-10-24", "name": "Elevação do Amazonas"}])
    )
    data = event.model_dump(mode="json")
    assert data["updated_at"] == "2025-03-01T09:30:00-04:00"
    assert data["extra_holidays"] == [{"date": "2025-10-24", "name": "Elevação do Amazonas"}]
    assert OperatorUpserted.model_validate(data) == event
    assert isinstance(event.updated_at, datetime)


@pytest.mark.parametrize("value", [0, "0", 1_700_000_000, "17/11/2025", True])
def test_an_extra_holiday_date_is_a_calendar_date_not_a_number(value: object) -> None:
    with pytest.raises(ValidationError, match="calendar date"):
        ExtraHoliday.model_validate({"date": value, "name": "Aniversário da cidade"})
    holiday = ExtraHoliday.model_validate_json('{"date": "2025-11-17", "name": "Aniversário"}')
    assert holiday.date.isoformat() == "2025-11-17"
