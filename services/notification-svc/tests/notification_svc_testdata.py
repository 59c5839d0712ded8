"""Test data shared by notification-svc's test modules: events as protocol-svc emits them."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from notification_svc.settings import NotificationSettings
from rn623_devinfra import migrations
from rn623_devinfra.provider_emulators import notification_settings
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import (
    Beneficiary,
    DemandAnswered,
    DemandRegistered,
    ProtocolOpened,
)
from rn623_events.settings import AuthSettings, KafkaSettings

SERVICE_DIR = Path(__file__).resolve().parent.parent
SECRET = "notification-svc-tests-secret-0123456789abcdef"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
_numbers = itertools.count(1)


def migrate(database_url: str) -> None:
    """Run the service's real Alembic migrations up to head."""
    migrations.migrate(SERVICE_DIR, database_url)


def protocol_number() -> str:
    """A fresh 20-digit protocol number (unique in the test run)."""
    return f"{uuid.uuid4().int % 10**12:012d}{next(_numbers):08d}"


def operator(
    ans: str, *, name: str = "Operadora Exemplo Saúde", revision: int = 1, at: datetime
) -> OperatorUpserted:
    """An operator registration."""
    return OperatorUpserted(
        ans_registry=ans,
        name=name,
        segment="medical",
        modality="medicina_de_grupo",
        beneficiaries=50_000,
        uf="SP",
        municipality_ibge="3550308",
        timezone="America/Sao_Paulo",
        revision=revision,
        updated_at=at,
    )


def beneficiary(**overrides: Any) -> Beneficiary:
    """A beneficiary with every channel (fake numbers and addresses)."""
    fields: dict[str, Any] = {
        "name": "Maria Teste",
        "email": "maria.teste@example.org",
        "phone": "+5511990000001",
        "whatsapp": "+5511990000002",
    }
    fields.update(overrides)
    return Beneficiary(**fields)


def opened(ans: str, number: str, at: datetime, **beneficiary_fields: Any) -> ProtocolOpened:
    """protocol.opened of a phone contact."""
    return ProtocolOpened(
        protocol_number=number,
        ans_registry=ans,
        layout_id="ans-default-20",
        channel="phone",
        direction="inbound",
        opened_at=at.astimezone(SAO_PAULO),
        timezone="America/Sao_Paulo",
        beneficiary=beneficiary(**beneficiary_fields),
    )


def demand(
    ans: str, number: str, at: datetime, *, demand_type: str = "assistance", days: int = 5
) -> DemandRegistered:
    """demand.registered with a business-day deadline."""
    return DemandRegistered(
        protocol_number=number,
        ans_registry=ans,
        demand_id=uuid.uuid4(),
        demand_type=demand_type,
        requested_at=at,
        registered_at=at,
        due_at=at + timedelta(days=days + 2),
        immediate=False,
        deadline_rule_id=f"rn623.deadline.{demand_type}",
        deadline_legal_basis="RN 623/2024",
        deadline_unit="business_days",
        deadline_amount=days,
        ruleset_id="test",
    )


def answered(
    ans: str, number: str, demand_id: uuid.UUID, at: datetime, *, outcome: str = "denied"
) -> DemandAnswered:
    """demand.answered (a denial by default, with its basis)."""
    return DemandAnswered(
        protocol_number=number,
        ans_registry=ans,
        demand_id=demand_id,
        outcome=outcome,
        text="O procedimento não tem cobertura contratual.",
        legal_basis="Cláusula 12.3 do contrato" if outcome == "denied" else None,
        answered_at=at,
        reanalysis_allowed=outcome in ("denied", "partially_authorized"),
    )


def service_settings(
    database_url: str, emu: Any, api_port: int, **overrides: Any
) -> NotificationSettings:
    """Settings pointing every provider at the emulators, with short test timings."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "kafka": KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        "auth": AuthSettings(secret=SECRET),
        **notification_settings(
            emu.http_url, "127.0.0.1", emu.smtp_port, f"http://127.0.0.1:{api_port}/v1/webhooks"
        ),
        "meta_verify_token": "dev-meta-verify-token",
        "provider_timeout_seconds": 2.0,
        "retry_backoff_initial_seconds": 1.0,
        "retry_backoff_max_seconds": 8.0,
        "provider_max_attempts": 3,
    }
    fields.update(overrides)
    return NotificationSettings(**fields)
