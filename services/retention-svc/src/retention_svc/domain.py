"""retention-svc's rules: schedules, purge grouping, beneficiary pseudonyms, the
certificate chain and the records-access deadline. No I/O, no framework."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rn623_rulebook import (
    CalendarSpec,
    Deadline,
    calendar_for,
    deadline_for,
    protocol_retention,
)

RETAINED, PURGE_REQUESTED, DISPOSED = "retained", "purge_requested", "disposed"
GENESIS_HASH = "0" * 64


def schedule(
    contact_at: datetime,
    answered_at: Iterable[datetime | None],
    complaint_at: datetime | None,
) -> dict[str, datetime | None]:
    """Every record class's ``retain_until`` for a protocol (None: not yet known)."""
    ends = protocol_retention(contact_at, answered_at, complaint_at)
    return {record_class.value: end for record_class, end in ends.items()}


def reopened(entry: Mapping[str, Any], end: datetime | None, now: datetime) -> bool:
    """Whether new facts (a demand, a complaint) put a class whose purge was requested
    back under retention: its new end is unknown or still ahead."""
    return entry["status"] == PURGE_REQUESTED and (end is None or end > now)


def owner_groups(
    record_classes: Iterable[str], owners: Mapping[str, Sequence[str]]
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Split classes due together into one purge per set of owners, as (owners, classes).

    Grouping by owners keeps one owner that is down from delaying the certificate of
    records another owner already purged.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for record_class in sorted(set(record_classes)):
        key = tuple(sorted(owners[record_class]))
        groups.setdefault(key, []).append(record_class)
    return [(key, tuple(classes)) for key, classes in sorted(groups.items())]


def beneficiary_key(
    secret: bytes, ans_registry: str, *, cpf: str | None, card_number: str | None
) -> str | None:
    """A keyed pseudonym of the beneficiary within an operator: the CPF, else the card."""
    if cpf:
        subject = f"cpf:{cpf}"
    elif card_number:
        subject = f"card:{ans_registry}:{card_number}"
    else:
        return None
    return hmac.new(secret, subject.encode(), hashlib.sha256).hexdigest()


# What a certificate's hash covers. Fixed, so that a column added to the table later
# does not change the hash of the certificates already in a chain.
CERTIFICATE_FIELDS = (
    "id",
    "ans_registry",
    "sequence",
    "purge_request_id",
    "protocol_number",
    "record_classes",
    "confirmations",
    "requested_at",
    "disposed_at",
    "previous_hash",
)


def certificate_hash(certificate: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys) of a certificate's hashed fields."""
    body = {key: certificate[key] for key in CERTIFICATE_FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value: Any) -> str:
    """Times as RFC 3339 in UTC, other values (UUIDs) as text."""
    if isinstance(value, datetime):
        return utc_text(value)
    return str(value)


def utc_text(moment: datetime) -> str:
    """An aware instant as RFC 3339 text in UTC (the certificates' canonical form)."""
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class ChainCheck:
    """Result of verifying an operator's certificate chain."""

    certificates: int
    valid: bool
    broken_at_sequence: int | None = None
    problem: str | None = None


def verify_chain(certificates: Iterable[Mapping[str, Any]]) -> ChainCheck:
    """Recompute every hash and link of a chain given in sequence order."""
    previous, count = GENESIS_HASH, 0
    for certificate in certificates:
        count += 1
        sequence = certificate["sequence"]
        if sequence != count:
            return ChainCheck(count, False, sequence, "sequence_gap")
        if certificate["previous_hash"] != previous:
            return ChainCheck(count, False, sequence, "previous_hash_mismatch")
        if certificate_hash(certificate) != certificate["hash"]:
            return ChainCheck(count, False, sequence, "hash_mismatch")
        previous = certificate["hash"]
    return ChainCheck(count, True)


def access_deadline(requested_at: datetime, timezone: str) -> Deadline:
    """The records-access deadline (72 clock hours by default) in force when asked."""
    return deadline_for(
        "records_access", None, requested_at, calendar_for(CalendarSpec(timezone=timezone))
    )
