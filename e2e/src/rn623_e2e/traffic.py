"""What a contact-center day is made of: operators, beneficiaries and their contacts.

Everything here is synthetic but valid (CPFs with correct check digits, Brazilian mobile
numbers); every personal value handed out is remembered, so the suite can search the
logs for it afterwards.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

CHANNELS = ("phone", "in_person", "web", "app", "chat", "whatsapp", "email")
DEMAND_TYPES = (
    "assistance",
    "high_complexity",
    "elective_hospitalization",
    "non_assistance",
    "urgent_emergency",
    "records_access",
)
OUTCOMES = ("authorized", "partially_authorized", "denied", "informed", "resolved")
COMPLAINT_SOURCES = ("nip", "ouvidoria", "sac", "consumidor_gov", "procon")
FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elisa", "Fábio", "Gisele", "Heitor", "Iara")
LAST_NAMES = ("Azevedo", "Barros", "Cardoso", "Duarte", "Esteves", "Fonseca", "Guimarães")


@dataclass(frozen=True)
class Operator:
    """A health-plan operator of the day."""

    ans: str
    name: str
    segment: str
    coverage: str
    uf: str
    municipality_ibge: str
    beneficiaries: int

    def body(self) -> dict[str, Any]:
        """The body of ``PUT /v1/operators/{ans}``."""
        return {
            "name": self.name,
            "segment": self.segment,
            "modality": "medicina_de_grupo"
            if self.segment == "medical"
            else "odontologia_de_grupo",
            "beneficiaries": self.beneficiaries,
            "uf": self.uf,
            "municipality_ibge": self.municipality_ibge,
            "timezone": "America/Sao_Paulo",
        }


def operators_of_the_day(rng: random.Random) -> tuple[Operator, Operator]:
    """Two operators: a large medical one in São Paulo, a small dental one in Rio."""
    first = rng.randrange(300000, 399999)
    return (
        Operator(str(first), "Saúde Paulista E2E", "medical", "medical", "SP", "3550308", 150_000),
        Operator(
            str(first + 1), "Sorriso Carioca E2E", "dental", "dental", "RJ", "3304557", 12_000
        ),
    )


def cpf(rng: random.Random) -> str:
    """A random CPF with valid check digits, masked as 000.000.000-00."""
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        if len(set(digits)) > 1:
            break
    for length in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(length + 1, 1, -1), strict=False))
        digits.append(total * 10 % 11 % 10)
    text = "".join(map(str, digits))
    return f"{text[:3]}.{text[3:6]}.{text[6:9]}-{text[9:]}"


@dataclass
class Beneficiary:
    """A beneficiary and how to reach them."""

    cpf: str
    name: str
    email: str | None
    phone: str | None
    preferred: list[str]

    def body(self) -> dict[str, Any]:
        """The ``beneficiary`` object of a protocol."""
        body: dict[str, Any] = {
            "card_number": "".join(c for c in self.cpf if c.isdigit()) + "01",
            "cpf": self.cpf,
            "name": self.name,
            "preferred_channels": self.preferred,
        }
        if self.email:
            body["email"] = self.email
        if self.phone:
            body["phone"] = self.phone
        return body

    def expected_channel(self) -> str:
        """The channel the receipt must arrive on: the first preferred one that has an
        address, else the default order WhatsApp → SMS → e-mail (WhatsApp uses the phone)."""
        available = {"email": self.email, "sms": self.phone, "whatsapp": self.phone}
        for channel in [*self.preferred, "whatsapp", "sms", "email"]:
            if available[channel]:
                return channel
        raise ValueError("a beneficiary of the day always has an address")

    def personal_data(self) -> list[str]:
        """Every personal value of this beneficiary (for the log scan)."""
        return [v for v in (self.cpf, self.name, self.email, self.phone) if v]


def beneficiary(rng: random.Random, n: int) -> Beneficiary:
    """The ``n``-th beneficiary: preferences and addresses vary so every channel is used."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = f"{first} {last} {uuid.uuid4().hex[:6].upper()}"
    handle = f"{first}.{last}.{uuid.uuid4().hex[:8]}".lower()
    phone = f"(11) 9{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}"
    shapes: list[tuple[list[str], bool, bool]] = [
        (["whatsapp"], True, True),
        (["sms"], True, True),
        (["email"], True, True),
        ([], True, True),  # no preference: the operator's order, WhatsApp first
        ([], True, False),  # e-mail only
    ]
    preferred, has_email, has_phone = shapes[n % len(shapes)]
    email = f"{handle}@example.com".encode("ascii", "ignore").decode() if has_email else None
    return Beneficiary(cpf(rng), name, email, phone if has_phone else None, preferred)


@dataclass
class DemandCase:
    """A demand of the day and what happened to it."""

    id: str
    demand_type: str
    due_at: datetime
    answer: str | None = None  # "on_time" | "late"; None: never answered
    outcome: str | None = None
    reanalysis_of: str | None = None


@dataclass
class ProtocolCase:
    """A protocol of the day: how it was opened and everything done on it."""

    operator: Operator
    channel: str
    via: str  # "http" | "kafka"
    who: Beneficiary
    number: str = ""
    opened_at: datetime | None = None
    demands: list[DemandCase] = field(default_factory=list)
    complaints: list[str] = field(default_factory=list)
    recording: bool = False
    legal_hold: str | None = None
    access_request: str | None = None

    @property
    def resolved(self) -> bool:
        """Whether every demand was answered (retention counts from the resolution)."""
        return all(d.answer for d in self.demands)

    def answered_copies(self) -> int:
        """Answers given on this protocol (each gets a copy sent to the beneficiary)."""
        return sum(1 for d in self.demands if d.answer)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, interval: float = 0.5
) -> T | None:
    """Call ``probe`` until it returns something truthy or ``within`` seconds pass; return the
    last result (the caller checks it, so a probe that never succeeds fails a check)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


async def bounded(jobs: Sequence[Awaitable[T]], limit: int = 16) -> list[T]:
    """Await ``jobs`` with at most ``limit`` in flight."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def expect_ok(response: httpx.Response, what: str) -> Any:
    """The JSON body of a 2xx response, or an error naming ``what`` and the status."""
    if response.is_success:
        return response.json() if response.content else None
    raise AssertionError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
