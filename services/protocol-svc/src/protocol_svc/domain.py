"""Pure rules of protocol-svc (no framework, no I/O)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROTOCOL_OPEN = "open"
PROTOCOL_ANSWERED = "answered"
DEMAND_OPEN = "open"


def request_fingerprint(body: Mapping[Any, Any]) -> str:
    """A stable digest of a request body, to tell a retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Record classes (DESIGN §2) whose records protocol-svc holds; notifications are
# notification-svc's.
HELD_RECORD_CLASSES = ("recording", "interaction_record", "protocol_record", "complaint_linked")

# What an anonymized answer reads in place of its text (the beneficiary may see it).
PURGED_TEXT = "Conteúdo removido ao fim do prazo de guarda."


@dataclass(frozen=True)
class PurgePlan:
    """What a purge request asks of protocol-svc."""

    record_classes: tuple[str, ...]
    delete_recordings: bool
    delete_other_interactions: bool
    anonymize_protocol: bool


def purge_plan(requested: Sequence[str]) -> PurgePlan:
    """The purge of the requested classes that protocol-svc holds.

    Recordings and the other interaction records are deleted; the protocol record
    (beneficiary data, free texts) is anonymized, keeping numbers, dates, types and
    outcomes for the statistics the regulator asks for (IGR, deadlines). A
    complaint-linked purge covers every record of the protocol.
    """
    held = tuple(c for c in requested if c in HELD_RECORD_CLASSES)
    everything = "complaint_linked" in held
    return PurgePlan(
        record_classes=held,
        delete_recordings=everything or "recording" in held,
        delete_other_interactions=everything or "interaction_record" in held,
        anonymize_protocol=everything or "protocol_record" in held,
    )
