"""Field types shared by the event contracts.

Each string type is an ``Annotated`` alias carrying its validation (pattern, bounds), so
every contract that uses it validates it the same way and its JSON Schema says so. Fields
give their own ``Field(description=...)``: a description inside the alias would land in
the non-null branch of an optional field's schema instead of on the field.

Validation messages never quote the submitted value: CPFs, phone numbers, e-mail
addresses, names and free text are personal data, and validation errors end up in
dead-letter headers and logs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

__all__ = [
    "REANALYSIS_OUTCOMES",
    "AnsRegistry",
    "AnswerText",
    "Author",
    "AwareDatetime",
    "Category",
    "Channel",
    "ComplaintSource",
    "ContactId",
    "Coverage",
    "DemandDescription",
    "DemandTypeStr",
    "Direction",
    "InteractionContent",
    "InteractionKind",
    "IsoDate",
    "LegalBasis",
    "NotificationChannel",
    "Outcome",
    "ProtocolNumberStr",
    "RecordClass",
    "RecordingUri",
    "check_interaction_content",
    "check_legal_basis",
    "cpf_has_valid_check_digits",
]

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_date_only(value: Any) -> Any:
    """Refuse what pydantic would read as a Unix timestamp (``0`` → 1 January 1970)."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and not _ISO_DATE.fullmatch(value)
    ):
        raise ValueError("must be a calendar date, YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_calendar_date_only)]
"""A calendar date written ``YYYY-MM-DD`` (never a number)."""

AnsRegistry = Annotated[
    str, Field(pattern=r"^[0-9]{6}$", description="ANS registration number (6 digits).")
]
"""ANS registration number of an operator: 6 digits, leading zeros significant."""

ProtocolNumberStr = Annotated[str, Field(pattern=r"^[0-9]{20,30}$")]
"""A protocol number as issued: decimal digits only, 20 (default layout) to 30 long."""

DemandTypeStr = Literal[
    "urgent_emergency",
    "assistance",
    "high_complexity",
    "elective_hospitalization",
    "non_assistance",
    "reanalysis",
    "records_access",
]
"""Kind of demand; each has its own response deadline (DESIGN §2)."""

Channel = Literal["phone", "in_person", "web", "app", "chat", "whatsapp", "email"]
"""Attendance channel of a contact."""

Direction = Literal["inbound", "outbound"]
"""Who started the contact: the beneficiary (inbound) or the operator (outbound)."""

Outcome = Literal["authorized", "partially_authorized", "denied", "informed", "resolved"]
"""Conclusive outcome of an answer to a demand."""

REANALYSIS_OUTCOMES: frozenset[str] = frozenset({"denied", "partially_authorized"})
"""Outcomes that give the beneficiary the right to a re-analysis by the ouvidoria."""

ComplaintSource = Literal["nip", "ouvidoria", "sac", "consumidor_gov", "procon"]
"""Where a complaint came from (NIP is the ANS's intermediation, counted in the IGR)."""

NotificationChannel = Literal["email", "sms", "whatsapp"]
"""Channel a receipt or answer can be sent on."""

Coverage = Literal["medical", "dental"]
"""Coverage a complaint is about: medical-hospital or dental (the IGR is per coverage)."""

RecordClass = Literal[
    "recording", "interaction_record", "protocol_record", "notification", "complaint_linked"
]
"""Class of record with its own retention period (DESIGN §2)."""

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.:-]*$"

RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN, max_length=120)]
"""Id of a rulebook rule, e.g. ``rn623.deadline.assistance``."""

ServiceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
"""Name of a platform service, e.g. ``protocol-svc``."""

InteractionKind = Literal["transcript", "message", "note", "recording"]
"""What an interaction record holds: text (transcript, message, note) or a recording."""

Author = Literal["beneficiary", "agent", "system"]
"""Who wrote or said the content of an interaction."""

Category = Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,80}$")]
"""Category of a demand, e.g. a procedure family with a shorter norm (RN 566/2022)."""

DemandDescription = Annotated[str, Field(min_length=1, max_length=4000)]
"""Free-text description of a demand (personal data: never logged)."""

AnswerText = Annotated[str, Field(min_length=1, max_length=8000)]
"""Text of an answer as given to the beneficiary (personal data: never logged)."""

LegalBasis = Annotated[str, Field(min_length=1, max_length=1000)]
"""Contractual clause or norm a denial rests on."""

ContactId = Annotated[str, Field(min_length=1, max_length=128)]
"""Id a contact-center platform gives a contact; the key of ``contact-center.inbound``."""

RecordingUri = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$", max_length=2048)]
"""Absolute URI (scheme, colon, no spaces) of a call recording."""

InteractionContent = Annotated[str, Field(min_length=1, max_length=100_000)]
"""Text of an interaction (personal data: never logged)."""


def check_legal_basis(outcome: str | None, legal_basis: str | None) -> str | None:
    """Return ``legal_basis``; raise ``ValueError`` if a denial comes without one.

    RN 623 requires every denial to cite its contractual or legal basis.
    """
    if outcome == "denied" and legal_basis is None:
        raise ValueError("legal_basis is required when outcome is denied")
    return legal_basis


def check_interaction_content(kind: str | None, field: str, value: str | None) -> str | None:
    """Return ``value``; raise ``ValueError`` if ``field`` is missing for ``kind``.

    A recording needs ``recording_uri``; a transcript, message or note needs ``content``.
    ``kind`` is None when the kind itself failed validation (nothing more to check).
    """
    if kind is None or value is not None:
        return value
    if field == "recording_uri" and kind == "recording":
        raise ValueError("recording_uri is required when kind is recording")
    if field == "content" and kind != "recording":
        raise ValueError(f"content is required when kind is {kind}")
    return value


def cpf_has_valid_check_digits(digits: str) -> bool:
    """Tell whether 11 digits form a valid CPF (mod-11 check digits, not all equal)."""
    if len(digits) != 11 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    for length in (9, 10):
        total = sum(
            int(d) * w for d, w in zip(digits[:length], range(length + 1, 1, -1), strict=True)
        )
        check = total * 10 % 11 % 10
        if check != int(digits[length]):
            return False
    return True


class InteractionFields(BaseModel):
    """What an interaction holds: a transcript, message or note's content, or a recording.

    Shared by ``interaction.recorded`` on both topics and protocol-svc's HTTP body, so
    the rule (a recording needs ``recording_uri``, the others ``content``) is one.
    """

    kind: InteractionKind = Field(description="What the interaction holds.")
    author: Author | None = Field(default=None, description="Who wrote or said it, if known.")
    content: InteractionContent | None = Field(
        default=None,
        validate_default=True,
        description="Text of the transcript, message or note; required unless a recording.",
    )
    recording_uri: RecordingUri | None = Field(
        default=None,
        validate_default=True,
        description="URI of the recording in the contact center's storage; required for a "
        "recording.",
    )
    duration_seconds: int | None = Field(
        default=None, ge=0, description="Length of the recording in seconds."
    )

    @field_validator("content", "recording_uri")
    @classmethod
    def _content_for_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_interaction_content(info.data.get("kind"), info.field_name or "", value)
