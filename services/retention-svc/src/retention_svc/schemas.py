"""HTTP request and response bodies of retention-svc (v1)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rn623_events.contracts.common import cpf_has_valid_check_digits
from rn623_events.contracts.retention import AccessScope

ANS_PATTERN = r"^[0-9]{6}$"
PROTOCOL_PATTERN = r"^[0-9]{20,30}$"
_CPF_SHAPE = re.compile(r"[0-9]{11}|[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}")

HoldScope = Literal["protocol", "beneficiary", "operator"]
ScheduleStatus = Literal["retained", "purge_requested", "disposed"]
AccessStatus = Literal["open", "fulfilled", "rejected"]
PurgeStatus = Literal["pending", "disposed"]
ReasonText = Annotated[
    str, Field(min_length=1, max_length=1000, description="Why (free text, kept for audit).")
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---- retention -----------------------------------------------------------------------------


class RetentionEntryOut(BaseModel):
    """Until when one class of a protocol's records is kept, and what blocks its purge."""

    record_class: str
    retain_until: dt.datetime | None = Field(
        description="Earliest instant the records may be purged; null while not yet known."
    )
    status: ScheduleStatus
    purge_request_id: uuid.UUID | None = Field(description="The purge that took the records.")
    held: bool = Field(description="Whether an active legal hold suspends the purge.")
    hold_ids: list[uuid.UUID] = Field(description="The active legal holds covering it.")


class RetentionOut(BaseModel):
    """A protocol's retention facts and schedule; times in the protocol's time zone."""

    protocol_number: str
    operator: str = Field(description="ANS registration of the operator (6 digits).")
    timezone: str
    contact_at: dt.datetime
    complaint_at: dt.datetime | None
    beneficiary_known: bool = Field(
        description="Whether the beneficiary is known (by CPF or card; never shown)."
    )
    held: bool = Field(description="Whether any active legal hold covers the protocol.")
    hold_ids: list[uuid.UUID]
    entries: list[RetentionEntryOut] = Field(description="One entry per record class.")


# ---- legal holds ---------------------------------------------------------------------------


class BeneficiaryIn(_In):
    """Whose records a hold covers: the CPF (preferred) or the health-plan card number."""

    cpf: str | None = Field(
        default=None, description="11 digits, optionally formatted as 000.000.000-00."
    )
    card_number: str | None = Field(default=None, min_length=1, max_length=40)

    @field_validator("cpf")
    @classmethod
    def _cpf(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _CPF_SHAPE.fullmatch(value):
            raise ValueError("must be 11 digits, optionally formatted as 000.000.000-00")
        digits = value.replace(".", "").replace("-", "")
        if not cpf_has_valid_check_digits(digits):
            raise ValueError("is not a valid CPF (check digits)")
        return digits

    @model_validator(mode="after")
    def _one_of(self) -> BeneficiaryIn:
        if self.cpf is None and self.card_number is None:
            raise ValueError("give cpf or card_number")
        return self


class HoldIn(_In):
    """A legal hold: suspends every purge of a protocol, a beneficiary or an operator."""

    operator: str = Field(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
    scope: HoldScope
    protocol_number: str | None = Field(
        default=None, pattern=PROTOCOL_PATTERN, description="Required iff scope is protocol."
    )
    beneficiary: BeneficiaryIn | None = Field(
        default=None, description="Required iff scope is beneficiary."
    )
    reason: ReasonText

    def scope_problem(self) -> tuple[str, str, str] | None:
        """The (field, message, kind) that does not fit the scope, or None."""
        if self.scope == "protocol" and self.protocol_number is None:
            return "protocol_number", "is required when scope is protocol", "missing"
        if self.scope != "protocol" and self.protocol_number is not None:
            return "protocol_number", "is only allowed when scope is protocol", "not_allowed"
        if self.scope == "beneficiary" and self.beneficiary is None:
            return "beneficiary", "is required when scope is beneficiary", "missing"
        if self.scope != "beneficiary" and self.beneficiary is not None:
            return "beneficiary", "is only allowed when scope is beneficiary", "not_allowed"
        return None


class HoldAuditOut(BaseModel):
    """One change to a hold."""

    action: Literal["placed", "released"]
    actor: str
    at: dt.datetime
    reason: str


class HoldOut(BaseModel):
    """A legal hold (the beneficiary is only known by a pseudonym, never shown)."""

    id: uuid.UUID
    operator: str
    scope: HoldScope
    protocol_number: str | None
    has_beneficiary: bool = Field(description="Whether the hold names a beneficiary.")
    reason: str
    placed_by: str
    placed_at: dt.datetime
    released_by: str | None
    released_at: dt.datetime | None
    release_reason: str | None
    active: bool


class HoldDetailOut(HoldOut):
    """A legal hold with its audit trail, oldest change first."""

    audit: list[HoldAuditOut]


class HoldPage(BaseModel):
    """A page of legal holds, newest first; pass ``next_cursor`` as ``cursor``."""

    items: list[HoldOut]
    next_cursor: str | None


# ---- access requests -----------------------------------------------------------------------


class AccessRequestIn(_In):
    """A beneficiary asks for a copy of their records (free, due in 72 hours)."""

    operator: str = Field(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
    protocol_number: str = Field(
        pattern=PROTOCOL_PATTERN, description="The protocol of the contact in which they asked."
    )
    scope: AccessScope = Field(
        default="beneficiary",
        description="beneficiary: every protocol of the beneficiary; protocol: this one only.",
    )


class AccessRequestOut(BaseModel):
    """A records-access request; times in the protocol's time zone."""

    id: uuid.UUID
    operator: str
    protocol_number: str
    scope: AccessScope
    status: AccessStatus
    requested_by: str
    requested_at: dt.datetime
    due_at: dt.datetime
    rule_id: str
    legal_basis: str
    ruleset_id: str
    fulfilled_at: dt.datetime | None
    attempts: int = Field(description="Collection attempts so far.")
    last_error: str | None = Field(description="Why the last collection attempt failed (code).")
    bundle_url: str | None = Field(description="Where the bundle is, once fulfilled.")


class AccessRequestPage(BaseModel):
    """A page of access requests, newest first; pass ``next_cursor`` as ``cursor``."""

    items: list[AccessRequestOut]
    next_cursor: str | None


# ---- disposal certificates -----------------------------------------------------------------


class CertificateOut(BaseModel):
    """A disposal certificate, linked to its operator's previous one by ``previous_hash``."""

    id: uuid.UUID
    operator: str
    sequence: int
    purge_request_id: uuid.UUID
    protocol_number: str
    record_classes: list[str]
    confirmations: list[dict[str, Any]] = Field(description="Each owner's confirmation.")
    requested_at: dt.datetime
    disposed_at: dt.datetime
    previous_hash: str
    hash: str


class CertificatePage(BaseModel):
    """A page of certificates in (operator, sequence) order; pass ``next_cursor`` as ``cursor``."""

    items: list[CertificateOut]
    next_cursor: str | None


class ChainVerificationOut(BaseModel):
    """Whether an operator's certificate chain is intact."""

    operator: str
    certificates: int = Field(description="Certificates in the chain.")
    valid: bool
    broken_at_sequence: int | None = Field(description="First certificate found wrong.")
    problem: str | None = Field(
        description=(
            "sequence_gap, previous_hash_mismatch, hash_mismatch, head_missing, "
            "head_sequence_mismatch or head_hash_mismatch."
        )
    )
    head_sequence: int | None = Field(description="The chain head's sequence (null: no head).")


# ---- purges --------------------------------------------------------------------------------


class PurgePreviewItem(BaseModel):
    """A schedule entry the purge runner would request now."""

    protocol_number: str
    record_class: str
    retain_until: dt.datetime
    owners: list[str] = Field(description="Services that would be asked to purge it.")


class PurgePreviewOut(BaseModel):
    """Dry run of the purge runner for one operator at ``as_of``."""

    operator: str
    as_of: dt.datetime
    total: int = Field(description="Entries due in all, past their retention and not held.")
    items: list[PurgePreviewItem]
    next_cursor: str | None


class PurgeOut(BaseModel):
    """A purge request and its owners' confirmations."""

    id: uuid.UUID
    operator: str
    protocol_number: str
    record_classes: list[str]
    owners: list[str]
    status: PurgeStatus
    requested_at: dt.datetime
    disposed_at: dt.datetime | None
    confirmed_by: list[str]
    waiting_for: list[str] = Field(description="Owners that have not confirmed yet.")


class PurgePage(BaseModel):
    """A page of purge requests, newest first; pass ``next_cursor`` as ``cursor``."""

    items: list[PurgeOut]
    next_cursor: str | None
