"""Pure rules of protocol-svc (no framework, no I/O)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from rn623_rulebook import CalendarSpec

PROTOCOL_OPEN = "open"
PROTOCOL_ANSWERED = "answered"
DEMAND_OPEN = "open"


def calendar_spec(operator: Mapping[Any, Any]) -> CalendarSpec:
    """The business-day calendar of an operator's registration."""
    return CalendarSpec(
        timezone=operator["timezone"],
        uf=operator["uf"],
        municipality_ibge=operator["municipality_ibge"],
        extra_holidays=frozenset(
            date.fromisoformat(h["date"]) for h in operator.get("extra_holidays") or ()
        ),
    )


def request_fingerprint(body: Mapping[Any, Any]) -> str:
    """A stable digest of a request body, to tell a retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
