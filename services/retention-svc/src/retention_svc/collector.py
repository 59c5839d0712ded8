"""The records-access collector: builds the bundle of each open access request.

A request names the protocol of the contact in which the beneficiary asked. The bundle
covers every protocol of that beneficiary at the operator (or that protocol alone), each
read from its owner's public API (protocol-svc's ``GET /v1/protocols/{number}``: demands,
answers, interactions, status history) with its retention schedule, plus the list of
recording references. A request is leased while collected; an owner that fails or is
down is retried with capped exponential backoff and jitter, so the request is delayed,
never lost. ``access_request.fulfilled`` is emitted with the stored bundle.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client import Counter

from retention_svc import domain
from retention_svc import repository as repo
from retention_svc.runtime import Runtime
from rn623_events.contracts.retention import AccessRequestFulfilled
from rn623_events.worker import Component, periodic

log = logging.getLogger(__name__)

FULFILLED = Counter(
    "retention_access_requests_fulfilled_total", "Access requests fulfilled", ["operator"]
)
FAILURES = Counter(
    "retention_access_collection_failures_total", "Failed collection attempts", ["reason"]
)

LEASE = timedelta(minutes=5)
TokenSource = Callable[[str], str]
"""Returns a bearer token to read an operator's records from their owners."""


class CollectionError(Exception):
    """Collecting a bundle failed for now; ``reason`` is a short code (no personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccessCollector:
    """Collects the bundles of open access requests."""

    def __init__(
        self,
        rt: Runtime,
        *,
        protocol_svc_url: str,
        token_for: TokenSource,
        http: httpx.AsyncClient,
        interval: float = 2.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.rt = rt
        self.protocol_svc_url = protocol_svc_url.rstrip("/")
        self.token_for = token_for
        self.http = http
        self.interval = interval
        self.max_backoff = max_backoff

    def component(self) -> Component:
        """The worker component: a collection round every ``interval`` seconds."""
        return periodic(self.tick, self.interval, what="access collection")

    async def tick(self) -> int:
        """Attempt every request due now; return how many were fulfilled."""
        fulfilled = 0
        while (outcome := await self.collect_next()) is not None:
            fulfilled += outcome
        return fulfilled

    async def collect_next(self) -> bool | None:
        """Attempt the next due request: True fulfilled, False retried later, None if none."""
        now = self.rt.clock.now()
        async with self.rt.uow() as uow:
            request = await repo.claim_access_request(uow.session, now, now + LEASE)
            if request is None:
                return None
            covered = await repo.protocols_for_request(uow.session, request)
            schedules = await repo.schedules_of(
                uow.session, [p["protocol_number"] for p in covered or ()]
            )
            await uow.commit()
        if covered == []:  # the protocol is another operator's: never collect it
            async with self.rt.uow() as uow:
                await repo.reject_access_request(
                    uow.session, request["id"], self.rt.clock.now(), "protocol_of_another_operator"
                )
                await uow.commit()
            log.warning("access request rejected", extra={"request_id": str(request["id"])})
            return False
        try:
            if covered is None:
                raise CollectionError("protocol_not_known_yet")
            records = [await self._protocol_record(request, p) for p in covered]
        except (CollectionError, httpx.HTTPError) as exc:
            reason = exc.reason if isinstance(exc, CollectionError) else type(exc).__name__
            FAILURES.labels(reason).inc()
            retry_at = self.rt.clock.now() + self._backoff(request["attempts"] + 1)
            async with self.rt.uow() as uow:
                await repo.retry_access_request(uow.session, request["id"], retry_at, reason)
                await uow.commit()
            log.info(
                "access request collection postponed",
                extra={"request_id": str(request["id"]), "reason": reason},
            )
            return False
        fulfilled_at = self.rt.clock.now()
        bundle = _bundle(request, covered, records, schedules, fulfilled_at)
        async with self.rt.uow() as uow:
            if not await repo.fulfil_access_request(
                uow.session, request["id"], bundle, fulfilled_at
            ):
                return False
            uow.publish(
                AccessRequestFulfilled(
                    request_id=request["id"],
                    protocol_number=request["protocol_number"],
                    ans_registry=request["ans_registry"],
                    fulfilled_at=fulfilled_at,
                )
            )
            uow.after_commit(FULFILLED.labels(request["ans_registry"]).inc)
            await uow.commit()
        return True

    async def _protocol_record(
        self, request: Mapping[str, Any], protocol: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The protocol as its owner holds it; None when the owner no longer has it."""
        number = protocol["protocol_number"]
        response = await self.http.get(
            f"{self.protocol_svc_url}/v1/protocols/{quote(number)}",
            headers={"Authorization": f"Bearer {self.token_for(request['ans_registry'])}"},
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code != httpx.codes.OK:
            raise CollectionError(f"protocol_svc_status_{response.status_code}")
        record: dict[str, Any] = response.json()
        return record

    def _backoff(self, attempt: int) -> timedelta:
        """Capped exponential backoff with full jitter."""
        ceiling = min(self.max_backoff, 2.0 ** min(attempt, 20))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


def _bundle(
    request: Mapping[str, Any],
    protocols: Sequence[Mapping[str, Any]],
    records: Sequence[dict[str, Any] | None],
    schedules: Sequence[Mapping[str, Any]],
    generated_at: Any,
) -> dict[str, Any]:
    """The JSON bundle: every protocol's record and retention, and the recordings."""
    by_protocol: dict[str, list[dict[str, Any]]] = {}
    for entry in schedules:
        by_protocol.setdefault(entry["protocol_number"], []).append(
            {
                "record_class": entry["record_class"],
                "retain_until": _text(entry["retain_until"]),
                "status": entry["status"],
            }
        )
    recordings = [
        {
            "protocol_number": protocol["protocol_number"],
            "interaction_id": item["id"],
            "recording_uri": item["recording_uri"],
            "duration_seconds": item.get("duration_seconds"),
            "occurred_at": item.get("occurred_at"),
        }
        for protocol, record in zip(protocols, records, strict=True)
        if record is not None
        for item in record.get("interactions", [])
        if item.get("kind") == "recording" and item.get("recording_uri")
    ]
    return {
        "request_id": str(request["id"]),
        "operator": request["ans_registry"],
        "scope": request["scope"],
        "generated_at": _text(generated_at),
        "protocols": [
            {
                "protocol_number": protocol["protocol_number"],
                "available": record is not None,
                "record": record,
                "retention": by_protocol.get(protocol["protocol_number"], []),
            }
            for protocol, record in zip(protocols, records, strict=True)
        ],
        "recordings": recordings,
    }


def _text(moment: Any) -> str | None:
    """An instant as RFC 3339 text in UTC (None stays None)."""
    return domain.utc_text(moment) if moment is not None else None
