"""Test data shared by protocol-svc's test modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rn623_devinfra import migrations

SERVICE_DIR = Path(__file__).resolve().parent.parent


def migrate(database_url: str) -> None:
    """Run the service's real Alembic migrations up to head."""
    migrations.migrate(SERVICE_DIR, database_url)


OPERATOR_A, OPERATOR_B = "123456", "654321"

OPERATOR_BODY: dict[str, Any] = {
    "name": "Operadora Exemplo Saúde",
    "segment": "medical",
    "modality": "medicina_de_grupo",
    "beneficiaries": 150_000,
    "uf": "SP",
    "municipality_ibge": "3550308",
    "timezone": "America/Sao_Paulo",
}

BENEFICIARY: dict[str, Any] = {
    "card_number": "0001234567890",
    "cpf": "529.982.247-25",
    "name": "Maria da Silva",
    "email": "maria.silva@example.com",
    "phone": "(11) 91234-5678",
    "preferred_channels": ["email", "sms"],
}
