"""Which contact-center platforms may act for which operators on contact-center.inbound."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from protocol_svc.consumers import authorized
from rn623_events.consumer import PermanentError
from rn623_events.contracts import inbound
from rn623_events.envelope import make_envelope

pytestmark = pytest.mark.unit

NOW = datetime(2025, 11, 21, 13, 0, tzinfo=UTC)


def record(source: str, ans_registry: str) -> tuple[Any, Any]:
    """A contact.opened and its envelope from ``source``."""
    event = inbound.ContactOpened(
        ans_registry=ans_registry,
        contact_id="cc-1",
        channel="chat",
        direction="inbound",
        occurred_at=NOW,
        beneficiary={},
    )
    return event, make_envelope(event, source=source, time=NOW)


async def test_sources_act_only_for_their_operators() -> None:
    handled: list[str] = []

    async def handler(event: Any, envelope: Any, uow: Any) -> None:
        handled.append(f"{envelope.source}:{event.ans_registry}")

    guarded = authorized({"cc-acme": ["123456"], "bpo-x": ["*"]}, handler)
    await guarded(*record("cc-acme", "123456"), None)
    await guarded(*record("bpo-x", "654321"), None)
    for source, registry in (("cc-acme", "654321"), ("unknown", "123456")):
        with pytest.raises(PermanentError, match=r"^ans_registry: this source may not act"):
            await guarded(*record(source, registry), None)
    assert handled == ["cc-acme:123456", "bpo-x:654321"]


async def test_without_a_map_every_source_may_act() -> None:
    handled: list[str] = []

    async def handler(event: Any, envelope: Any, uow: Any) -> None:
        handled.append(envelope.source)

    await authorized({}, handler)(*record("anyone", "123456"), None)
    assert handled == ["anyone"]
