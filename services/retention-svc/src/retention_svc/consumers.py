"""retention-svc's consumer of ``protocol.events``.

- ``protocol.opened`` records the contact and schedules every record class of the
  protocol (recordings: 90 days from the contact; the rest once resolved).
- ``demand.registered`` / ``demand.answered`` move the resolution, and with it the end of
  the records counted from it; ``complaint.registered`` extends every class still
  retained to 5 years from the complaint. Each change emits ``retention.scheduled``.
- ``records.purged`` is an owner's confirmation of a purge request; once every owner
  named in the request has confirmed, the disposal is certified: a certificate is
  appended to the operator's hash chain and ``retention.disposed`` emitted.

Every effect is idempotent under redelivery (inbox, keys, status checks).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from retention_svc import domain
from retention_svc import repository as repo
from retention_svc.runtime import Runtime
from rn623_events.consumer import (
    ConsumerConfig,
    ConsumerRunner,
    Handler,
    PermanentError,
    typed_handler,
)
from rn623_events.contracts.protocols import (
    Beneficiary,
    ComplaintRegistered,
    DemandAnswered,
    DemandRegistered,
    ProtocolOpened,
    RecordsPurged,
)
from rn623_events.contracts.retention import (
    OwnerConfirmation,
    RetentionDisposed,
    RetentionScheduled,
    ScheduleEntry,
    ScheduleReason,
)
from rn623_events.db import GatheredWrites, UnitOfWork
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope
from rn623_events.settings import KafkaSettings

log = logging.getLogger(__name__)

SCHEDULE_CHANGES = Counter(
    "retention_schedule_changes_total", "Retention schedules set or changed", ["operator", "reason"]
)
CONFIRMATIONS = Counter(
    "retention_purge_confirmations_total", "Owners' purge confirmations", ["operator", "owner"]
)
# Concurrent lanes under a backlog (ConsumerConfig.lanes): the handlers wait on the
# database more than they compute. Their rows are one protocol's (a protocol's events
# share a partition), except an operator's certificate chain head: lanes certify one
# transaction at a time (RetentionHandlers._certifying), else two certifying for two
# operators in opposite orders would deadlock.
EVENT_LANES = 4
DISPOSALS = Counter("retention_disposals_total", "Disposals certified", ["operator"])
RECORDS_DISPOSED = Counter(
    "retention_records_disposed_total", "Record classes disposed of", ["operator", "record_class"]
)


@dataclass
class _Opened:
    """A protocol opened in the running transaction and not written yet: the events of
    the same poll add its demands, and the transaction writes every such protocol, its
    demands and its first schedule in three statements before it commits."""

    protocol: dict[str, Any]
    cause: Envelope | None
    demands: list[uuid.UUID] = field(default_factory=list)
    demand_cause: Envelope | None = None  # the last of its demands' events


class RetentionHandlers:
    """One handler per consumed event type."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # protocols opened in each open unit of work, not written yet (protocol-svc
        # publishes a contact and its demand together, so one poll usually brings both)
        self._opened = GatheredWrites[_Opened](self._write_opened)
        # certifications of this process's transactions (the consumer's lanes), one
        # transaction at a time: each holds the chain heads it took until it commits
        self._certifying = asyncio.Lock()

    def handlers(self) -> dict[str, Handler]:
        """Handlers keyed by event type, for the consumer runner."""
        return {
            "protocol.opened": typed_handler(ProtocolOpened, self.protocol_opened),
            "demand.registered": typed_handler(DemandRegistered, self.demand_registered),
            "demand.answered": typed_handler(DemandAnswered, self.demand_answered),
            "complaint.registered": typed_handler(ComplaintRegistered, self.complaint_registered),
            "records.purged": typed_handler(RecordsPurged, self.records_purged),
        }

    async def protocol_opened(self, event: ProtocolOpened, uow: UnitOfWork) -> None:
        """Record the contact and schedule the protocol's records (when the transaction
        commits, with the other contacts of the poll: ``_write_opened``)."""
        opened = self._opened.pending(uow)
        if event.protocol_number in opened:
            return  # a copy of the contact under another event id
        opened[event.protocol_number] = _Opened(
            {
                "protocol_number": event.protocol_number,
                "ans_registry": event.ans_registry,
                "timezone": event.timezone,
                "beneficiary_key": self._beneficiary_key(event.ans_registry, event.beneficiary),
                "contact_at": event.opened_at,
                "complaint_at": None,
                "updated_at": self.rt.clock.now(),
            },
            uow.cause,
        )

    async def demand_registered(self, event: DemandRegistered, uow: UnitOfWork) -> None:
        """An open demand: the records counted from the resolution wait for its answer."""
        opened = self._opened.get(uow, event.protocol_number)
        if opened is not None:  # opened in this transaction: scheduled with it
            if event.demand_id not in opened.demands:
                opened.demands.append(event.demand_id)
                opened.demand_cause = uow.cause
            return
        protocol = await self._protocol(uow, event.protocol_number)
        await repo.add_demands(uow.session, [(event.demand_id, event.protocol_number)])
        await self._reschedule(uow, protocol, "demand_registered")

    async def _write_opened(self, uow: UnitOfWork, opened: dict[str, _Opened]) -> None:
        """Write the protocols opened in this transaction and not written yet: their rows,
        their demands and their first schedules, three statements for them all, and one
        ``retention.scheduled`` each (reason ``contact``, its demands counted)."""
        new = await repo.insert_protocols(uow.session, [o.protocol for o in opened.values()])
        await repo.add_demands(
            uow.session, [(d, number) for number, o in opened.items() for d in o.demands]
        )
        now = self.rt.clock.now()
        rows: list[dict[str, Any]] = []
        cause = uow.cause  # restored after: each schedule is caused by its own contact
        try:
            for number, contact in opened.items():
                uow.cause = contact.cause
                if number not in new:  # known already: its demands move its stored schedule
                    if contact.demands:
                        uow.cause = contact.demand_cause
                        protocol = await self._protocol(uow, number)
                        await self._reschedule(uow, protocol, "demand_registered")
                    continue
                protocol = contact.protocol
                answers = [None] * len(contact.demands)
                ends = domain.schedule(protocol["contact_at"], answers, None)
                rows += [_entry(protocol, name, end, now) for name, end in ends.items()]
                self._announce(uow, protocol, "contact", ends, now)
        finally:
            uow.cause = cause
        await repo.save_schedule(uow.session, rows, now)

    async def demand_answered(self, event: DemandAnswered, uow: UnitOfWork) -> None:
        """An answer may resolve the protocol and start the 2-year clock."""
        protocol = await self._protocol(uow, event.protocol_number)
        await repo.answer_demand(
            uow.session, event.demand_id, event.protocol_number, event.answered_at
        )
        await self._reschedule(uow, protocol, "resolution")

    async def complaint_registered(self, event: ComplaintRegistered, uow: UnitOfWork) -> None:
        """A complaint keeps every record of the protocol for 5 years from it."""
        protocol = await self._protocol(uow, event.protocol_number)
        latest = protocol["complaint_at"]
        if latest is None or event.received_at > latest:
            await repo.set_complaint(uow.session, event.protocol_number, event.received_at)
            protocol = {**protocol, "complaint_at": event.received_at}
        await self._reschedule(uow, protocol, "complaint")

    async def records_purged(self, event: RecordsPurged, uow: UnitOfWork) -> None:
        """An owner confirmed a purge; certify the disposal once every owner has."""
        request = await repo.lock_purge_request(uow.session, event.purge_request_id)
        if request is None:
            raise PermanentError("purge_request_id: no such purge request")
        if event.owner not in request["owners"]:
            raise PermanentError("owner: not an owner named in the purge request")
        if event.ans_registry != request["ans_registry"]:
            raise PermanentError("ans_registry: not the purge request's operator")
        now = self.rt.clock.now()
        added = await repo.add_confirmation(
            uow.session,
            {
                "purge_request_id": event.purge_request_id,
                "owner": event.owner,
                "record_classes": list(event.record_classes),
                "purged_at": event.purged_at,
                "anonymized": event.anonymized,
                "received_at": now,
            },
        )
        # a cancelled request is still certified if its owners purged before the new facts
        if not added or request["disposed_at"] is not None:
            return
        uow.after_commit(CONFIRMATIONS.labels(event.ans_registry, event.owner).inc)
        confirmations = await repo.confirmations_of(uow.session, event.purge_request_id)
        if {c["owner"] for c in confirmations} < set(request["owners"]):
            return  # other owners still have to confirm
        purged = {cls for c in confirmations for cls in c["record_classes"]}
        if not purged >= set(request["record_classes"]):
            # every owner answered but some class was purged by nobody: never certify it
            log.error(
                "purge confirmed without every class; no certificate",
                extra={"purge_request_id": str(request["id"])},
            )
            return
        await self._certify(uow, request, confirmations)

    async def _certify(
        self, uow: UnitOfWork, request: Mapping[str, Any], confirmations: list[Mapping[str, Any]]
    ) -> None:
        """Append the disposal certificate to the operator's chain and announce it."""
        await uow.hold(self._certifying)  # no two lanes lock two chain heads in turn
        sequence, previous_hash = await repo.lock_chain_head(uow.session, request["ans_registry"])
        certificate: dict[str, Any] = {
            # derived from the request: one certificate per purge, whoever computes it
            "id": uuid.uuid5(uuid.NAMESPACE_URL, f"rn623:disposal:{request['id']}"),
            "ans_registry": request["ans_registry"],
            "sequence": sequence + 1,
            "purge_request_id": request["id"],
            "protocol_number": request["protocol_number"],
            "record_classes": list(request["record_classes"]),
            "confirmations": [
                {
                    "owner": c["owner"],
                    "record_classes": list(c["record_classes"]),
                    "purged_at": domain.utc_text(c["purged_at"]),
                    "anonymized": c["anonymized"],
                }
                for c in confirmations
            ],
            "requested_at": request["requested_at"],
            "disposed_at": self.rt.clock.now(),
            "previous_hash": previous_hash,
        }
        certificate["hash"] = domain.certificate_hash(certificate)
        await repo.append_certificate(uow.session, certificate)
        uow.publish(
            RetentionDisposed(
                certificate_id=certificate["id"],
                sequence=certificate["sequence"],
                purge_request_id=request["id"],
                protocol_number=request["protocol_number"],
                ans_registry=request["ans_registry"],
                record_classes=tuple(request["record_classes"]),
                confirmations=tuple(
                    OwnerConfirmation.model_validate(c) for c in certificate["confirmations"]
                ),
                requested_at=request["requested_at"],
                disposed_at=certificate["disposed_at"],
                previous_hash=previous_hash,
                hash=certificate["hash"],
            )
        )
        registry = request["ans_registry"]
        uow.after_commit(DISPOSALS.labels(registry).inc)
        for record_class in request["record_classes"]:
            uow.after_commit(RECORDS_DISPOSED.labels(registry, record_class).inc)

    async def _protocol(self, uow: UnitOfWork, protocol_number: str) -> Mapping[str, Any]:
        """The protocol's facts, locked; events of one protocol follow its opening.

        The protocols opened in this transaction are written first, so it reads them
        like any other."""
        await self._opened.write(uow)
        protocol = await repo.lock_protocol(uow.session, protocol_number)
        if protocol is None:
            raise PermanentError("protocol_number: no protocol.opened was received for it")
        return protocol

    async def _reschedule(
        self,
        uow: UnitOfWork,
        protocol: Mapping[str, Any],
        reason: ScheduleReason,
    ) -> None:
        """Recompute the protocol's schedule; save and announce it when it changed."""
        protocol_number = protocol["protocol_number"]
        answers = await repo.demand_answers(uow.session, protocol_number)
        current = await repo.schedule_of(uow.session, protocol_number)
        ends = domain.schedule(protocol["contact_at"], answers, protocol["complaint_at"])
        now = self.rt.clock.now()
        changed = [
            _entry(protocol, record_class, end, now)
            for record_class, end in ends.items()
            if record_class not in current
            or (
                current[record_class]["status"] == domain.RETAINED
                and current[record_class]["retain_until"] != end
            )
            or (domain.reopened(current[record_class], end, now))
        ]
        if not changed:
            return
        await repo.save_schedule(uow.session, changed, now)
        reopened = {
            current[c["record_class"]]["purge_request_id"]
            for c in changed
            if c["record_class"] in current
            and current[c["record_class"]]["status"] == domain.PURGE_REQUESTED
        }
        if reopened:  # the owner will refuse them too: they no longer wait for it
            await repo.cancel_emptied_requests(uow.session, reopened, now)
        kept = {c["record_class"] for c in changed}
        retained = {
            record_class: end
            for record_class, end in ends.items()
            if record_class in kept
            or current.get(record_class, {}).get("status", domain.RETAINED) == domain.RETAINED
        }
        self._announce(uow, protocol, reason, retained, now)

    def _announce(
        self,
        uow: UnitOfWork,
        protocol: Mapping[str, Any],
        reason: ScheduleReason,
        retained: Mapping[str, datetime | None],
        now: datetime,
    ) -> None:
        """Publish the protocol's schedule (every class still retained, with its end)."""
        uow.publish(
            RetentionScheduled(
                protocol_number=protocol["protocol_number"],
                ans_registry=protocol["ans_registry"],
                reason=reason,
                entries=tuple(
                    ScheduleEntry(record_class=record_class, retain_until=end)
                    for record_class, end in retained.items()
                ),
                scheduled_at=now,
            )
        )
        uow.after_commit(SCHEDULE_CHANGES.labels(protocol["ans_registry"], reason).inc)

    def _beneficiary_key(self, ans_registry: str, beneficiary: Beneficiary) -> str | None:
        return domain.beneficiary_key(
            self.rt.beneficiary_secret,
            ans_registry,
            cpf=beneficiary.cpf,
            card_number=beneficiary.card_number,
        )


def _entry(
    protocol: Mapping[str, Any], record_class: str, end: datetime | None, now: datetime
) -> dict[str, Any]:
    """A schedule row: ``record_class`` of ``protocol`` retained until ``end``."""
    return {
        "protocol_number": protocol["protocol_number"],
        "record_class": record_class,
        "ans_registry": protocol["ans_registry"],
        "retain_until": end,
        "status": domain.RETAINED,
        "purge_request_id": None,
        "updated_at": now,
    }


def event_consumer(
    rt: Runtime,
    kafka: KafkaSettings,
    dead_letters: DeadLetterPublisher,
    *,
    name: str = "retention-svc",
    config: ConsumerConfig | None = None,
) -> ConsumerRunner:
    """The consumer of ``protocol.events`` and ``notification.events`` (where
    notification-svc confirms its purges with ``records.purged``)."""
    return ConsumerRunner(
        name=name,
        topics=["protocol.events", "notification.events"],
        handlers=RetentionHandlers(rt).handlers(),
        sessions=rt.sessions,
        kafka=kafka,
        clock=rt.clock,
        source=rt.source,
        dead_letters=dead_letters,
        config=replace(config or ConsumerConfig(), lanes=EVENT_LANES),
    )
