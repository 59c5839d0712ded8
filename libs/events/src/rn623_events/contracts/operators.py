"""Operator registry contracts (``operator.events``, compacted, keyed by ANS registration)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rn623_events.contracts.common import AnsRegistry, AwareDatetime, IsoDate
from rn623_events.registry import Event, contract

Segment = Literal["medical", "dental", "both"]

Modality = Literal[
    "medicina_de_grupo",
    "cooperativa_medica",
    "autogestao",
    "seguradora_especializada_em_saude",
    "filantropia",
    "odontologia_de_grupo",
    "cooperativa_odontologica",
    "administradora_de_beneficios",
]
"""ANS operator modalities: medicina de grupo, cooperativa médica, autogestão, seguradora
especializada em saúde, filantropia, odontologia de grupo, cooperativa odontológica and
administradora de benefícios."""

UF = Literal[
    "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT", "PA",
    "PB", "PE", "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP", "TO",
]  # fmt: skip
"""The 26 Brazilian states and the Federal District."""

UF_IBGE_CODES: dict[str, str] = {
    "RO": "11", "AC": "12", "AM": "13", "RR": "14", "PA": "15", "AP": "16", "TO": "17",
    "MA": "21", "PI": "22", "CE": "23", "RN": "24", "PB": "25", "PE": "26", "AL": "27",
    "SE": "28", "BA": "29", "MG": "31", "ES": "32", "RJ": "33", "SP": "35", "PR": "41",
    "SC": "42", "RS": "43", "MS": "50", "MT": "51", "GO": "52", "DF": "53",
}  # fmt: skip
"""IBGE code of each UF: the first two digits of every municipality code in it."""

BrazilTimeZone = Literal[
    "America/Sao_Paulo",
    "America/Manaus",
    "America/Cuiaba",
    "America/Campo_Grande",
    "America/Porto_Velho",
    "America/Boa_Vista",
    "America/Rio_Branco",
    "America/Eirunepe",
    "America/Noronha",
    "America/Belem",
    "America/Fortaleza",
    "America/Recife",
    "America/Araguaina",
    "America/Maceio",
    "America/Bahia",
    "America/Santarem",
]
"""The IANA time zones of Brazil."""

DEFAULT_PROTOCOL_LAYOUT = "ans-default-20"


class ExtraHoliday(BaseModel):
    """A holiday of the operator beyond the national, state and municipal calendars."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    date: IsoDate = Field(description="Calendar date of the holiday.")
    name: str = Field(min_length=1, max_length=120, description="Name of the holiday.")


@contract("operator.upserted", version=1, topic="operator.events")
class OperatorUpserted(Event):
    """An operator was registered or its registration changed (full current state)."""

    ans_registry: AnsRegistry = Field(description="ANS registration number (6 digits).")
    name: str = Field(min_length=1, max_length=200, description="Operator's corporate name.")
    segment: Segment = Field(description="Assistance segment: medical, dental or both.")
    modality: Modality = Field(description="ANS modality of the operator.")
    beneficiaries: int = Field(ge=0, description="Number of beneficiaries (porte).")
    uf: UF = Field(description="State of the operator's headquarters.")
    municipality_ibge: str = Field(
        pattern=r"^[0-9]{7}$", description="IBGE code of the headquarters' municipality."
    )
    timezone: BrazilTimeZone = Field(description="IANA time zone of the operator.")
    protocol_layout: str = Field(
        default=DEFAULT_PROTOCOL_LAYOUT,
        min_length=1,
        max_length=64,
        description="Id of the protocol-number layout the operator uses.",
    )
    extra_holidays: tuple[ExtraHoliday, ...] = Field(
        default=(), description="Operator-specific holidays (distinct dates)."
    )
    revision: int = Field(ge=1, description="Registration revision; increases with each change.")
    updated_at: AwareDatetime = Field(description="When this revision was made (RFC 3339).")

    @model_validator(mode="after")
    def _check_consistency(self) -> OperatorUpserted:
        if not self.municipality_ibge.startswith(UF_IBGE_CODES[self.uf]):
            raise ValueError(f"municipality {self.municipality_ibge} is not in {self.uf}")
        dates = [holiday.date for holiday in self.extra_holidays]
        if len(set(dates)) != len(dates):
            raise ValueError("extra_holidays has repeated dates")
        return self

    def subject(self) -> str:
        """The operator's ANS registration."""
        return self.ans_registry
