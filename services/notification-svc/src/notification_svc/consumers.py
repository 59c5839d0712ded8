"""notification-svc's consumers: what creates a message, and what purges them.

- ``operator.upserted`` keeps the operator's name and time zone.
- ``protocol.opened`` keeps the beneficiary's addresses and creates the contact's
  receipt. A ``demand.registered`` that arrives before that receipt is sent (protocol-svc
  writes both in one commit) is folded into it, so one contact gets one receipt naming
  its demand and due date; a later demand gets a receipt of its own. The contacts of a
  poll and their demands are gathered and written when its transaction commits: their
  addresses and their operators in one statement, their demands in one, and their
  receipts, each naming its demands already, in one.
- ``demand.answered`` creates the copy of the answer; ``access_request.fulfilled`` the
  notice that the records are ready.
- ``retention.purge_requested`` naming notification-svc deletes the protocol's messages,
  timelines and addresses, and confirms with ``records.purged``.

Each message is unique per (protocol, purpose, demand or request), and the inbox drops
redelivered events, so nothing is ever sent twice because an event came twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from notification_svc import domain, lifecycle
from notification_svc.content import (
    AccessInfo,
    AnswerInfo,
    DemandInfo,
    MessageContent,
    Purpose,
)
from notification_svc.models import callbacks, deliveries, demands, messages, operators, protocols
from notification_svc.policy import Policy
from notification_svc.runtime import Runtime
from rn623_events.consumer import ConsumerConfig, ConsumerRunner, Handler, NotReady, typed_handler
from rn623_events.contracts.notifications import NotificationRecordsPurged
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import DemandAnswered, DemandRegistered, ProtocolOpened
from rn623_events.contracts.retention import AccessRequestFulfilled, PurgeRequested
from rn623_events.db import (
    GatheredWrites,
    UnitOfWork,
    array_params,
    rows_from_arrays,
)
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope
from rn623_events.settings import KafkaSettings
from rn623_events.tracecontext import current_trace_headers
from rn623_rulebook import load_ruleset

log = logging.getLogger(__name__)

OWNER = "notification-svc"
# concurrent lanes of the event consumer under a backlog (ConsumerConfig.lanes): its
# handlers wait on the database more than they compute
EVENT_LANES = 4
# Classes of record this service holds: its messages; complaint-linked protocols keep
# them longer, which retention-svc's schedule already says.
OWNED_CLASSES = ("notification", "complaint_linked")


_DEMAND_COLUMNS = ("demand_id", "protocol_number", "demand_type")
_ADD_DEMANDS = (
    insert(demands)
    .from_select(_DEMAND_COLUMNS, sa.select(rows_from_arrays(demands, _DEMAND_COLUMNS)))
    .on_conflict_do_nothing()
)
# The contacts of a transaction stored (rows as one JSON array: their preferred channels
# are arrays, which parallel arrays cannot carry) and their operators read, one round trip.
_OPEN_PROTOCOLS = sa.text(
    """
    WITH stored AS (
        INSERT INTO protocols
        SELECT * FROM jsonb_populate_recordset(NULL::protocols, CAST(:rows AS jsonb))
        ON CONFLICT DO NOTHING
    )
    SELECT o.ans_registry, o.name, p.profile
    FROM operators o LEFT JOIN profiles p ON p.ans_registry = o.ans_registry
    WHERE o.ans_registry = ANY(CAST(:ans AS text[]))
    """
)


def _json_value(value: Any) -> str:
    """A contact row's value that JSON has no type for (its opening instant)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not a JSON value: {type(value).__name__}")


class OperatorUnknown(NotReady):
    """The operator's registration has not arrived yet (another consumer group)."""


def reanalysis_business_days(on: Any) -> int | None:
    """Business days the ouvidoria has to answer a re-analysis, by the rules in force."""
    rules = load_ruleset().deadline_rules("reanalysis", None, on)
    days = [r.amount for r in rules if r.unit.value == "business_days"]
    return min(days) if days else None


@dataclass
class _Contact:
    """A contact opened in the running transaction, not written yet: the events of the
    same poll add its demands, and the commit writes it (``_write_contacts``)."""

    protocol: dict[str, Any]
    cause: Envelope | None
    demands: list[DemandInfo] = field(default_factory=list)


class NotificationHandlers:
    """One handler per consumed event type."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # contacts opened in each open unit of work and not written yet, by protocol
        self._contacts = GatheredWrites[_Contact](self._write_contacts)

    def handlers(self) -> dict[str, Handler]:
        """Handlers by event type."""
        return {
            "operator.upserted": typed_handler(OperatorUpserted, self.operator_upserted),
            "protocol.opened": typed_handler(ProtocolOpened, self.protocol_opened),
            "demand.registered": typed_handler(DemandRegistered, self.demand_registered),
            "demand.answered": typed_handler(DemandAnswered, self.demand_answered),
            "access_request.fulfilled": typed_handler(
                AccessRequestFulfilled, self.access_fulfilled
            ),
            "retention.purge_requested": typed_handler(PurgeRequested, self.purge_requested),
        }

    async def operator_upserted(self, event: OperatorUpserted, uow: UnitOfWork) -> None:
        """Keep the operator's name and time zone (newer revisions only)."""
        values = {
            "ans_registry": event.ans_registry,
            "name": event.name,
            "timezone": event.timezone,
            "revision": event.revision,
            "updated_at": event.updated_at,
        }
        stmt = insert(operators).values(**values)
        await uow.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[operators.c.ans_registry],
                set_={k: stmt.excluded[k] for k in values if k != "ans_registry"},
                where=operators.c.revision < stmt.excluded.revision,
            )
        )

    async def protocol_opened(self, event: ProtocolOpened, uow: UnitOfWork) -> None:
        """Keep the beneficiary's addresses and create the contact's receipt (when the
        transaction commits, with the poll's other contacts: ``_write_contacts``)."""
        contacts = self._contacts.pending(uow)
        if event.protocol_number in contacts:
            return  # a copy of the contact under another event id
        b = event.beneficiary
        contacts[event.protocol_number] = _Contact(
            {
                "protocol_number": event.protocol_number,
                "ans_registry": event.ans_registry,
                "opened_at": event.opened_at,
                "channel": event.channel,
                "timezone": event.timezone,
                "name": b.name,
                "email": b.email,
                # normalized again here: a number that SMS or WhatsApp cannot reach is dropped
                "phone": domain.messaging_number(b.phone),
                "whatsapp": domain.messaging_number(b.whatsapp),
                "preferred_channels": list(b.preferred_channels),
            },
            uow.cause,
        )

    async def demand_registered(self, event: DemandRegistered, uow: UnitOfWork) -> None:
        """A receipt for the demand: folded into the contact's unsent receipt, or its own."""
        info = DemandInfo(
            demand_id=event.demand_id,
            demand_type=event.demand_type,
            category=event.category,
            requested_at=event.requested_at,
            due_at=event.due_at,
            immediate=event.immediate,
            deadline_unit=event.deadline_unit,
            deadline_amount=event.deadline_amount,
        )
        contact = self._contacts.get(uow, event.protocol_number)
        if contact is not None:  # opened in this transaction: its receipt will name it
            if all(d.demand_id != info.demand_id for d in contact.demands):
                contact.demands.append(info)
            return
        await self._contacts.write(uow)
        demand = {
            "demand_id": event.demand_id,
            "protocol_number": event.protocol_number,
            "demand_type": event.demand_type,
        }
        await uow.session.execute(_ADD_DEMANDS, array_params(_DEMAND_COLUMNS, [demand]))
        await self._receipt_of_demand(uow, event.protocol_number, info)

    async def _receipt_of_demand(
        self, uow: UnitOfWork, protocol_number: str, info: DemandInfo
    ) -> None:
        """Name a stored protocol's new demand in its unsent receipt, or in its own."""
        if await self._fold_into_receipt(uow, protocol_number, info):
            return
        await self._create(
            uow,
            protocol_number,
            "receipt",
            subject_key=str(info.demand_id),
            demand_id=info.demand_id,
            demands=(info,),
        )

    async def _write_contacts(self, uow: UnitOfWork, contacts: dict[str, _Contact]) -> None:
        """Write the contacts opened in this transaction and not written yet: their
        addresses (their operators read in the same round trip), their demands, and each
        one's receipt naming its demands, caused by its own ``protocol.opened``."""
        rows = [contact.protocol for contact in contacts.values()]
        found = await uow.session.execute(
            _OPEN_PROTOCOLS,
            {
                "rows": json.dumps(rows, default=_json_value),
                "ans": sorted({row["ans_registry"] for row in rows}),
            },
        )
        operators_found = {row.ans_registry: self.rt.operator_from(row) for row in found}
        demand_rows = [
            {"demand_id": d.demand_id, "protocol_number": number, "demand_type": d.demand_type}
            for number, contact in contacts.items()
            for d in contact.demands
        ]
        if demand_rows:
            await uow.session.execute(_ADD_DEMANDS, array_params(_DEMAND_COLUMNS, demand_rows))
        new = []
        for contact in contacts.values():
            operator = operators_found.get(contact.protocol["ans_registry"])
            if operator is None:
                raise OperatorUnknown("the operator's registration has not arrived yet")
            new.append(
                _new_message(
                    contact.protocol,
                    operator,
                    "receipt",
                    subject_key="",
                    demand_id=contact.demands[0].demand_id if contact.demands else None,
                    demands=tuple(contact.demands),
                    cause=contact.cause,  # the receipt's trace is its contact's
                )
            )
        created = await self._create_all(uow, new)
        cause = uow.cause
        try:
            for (number, contact), was_created in zip(contacts.items(), created, strict=True):
                if was_created:
                    continue
                # a copy of a contact stored earlier: its receipt exists, maybe sent
                uow.cause = contact.cause
                for info in contact.demands:
                    await self._receipt_of_demand(uow, number, info)
        finally:
            uow.cause = cause

    async def _fold_into_receipt(
        self, uow: UnitOfWork, protocol_number: str, info: DemandInfo
    ) -> bool:
        """Add the demand to the contact's stored receipt if no channel has tried it yet."""
        receipt = (
            await uow.session.execute(
                sa.select(messages.c.id, messages.c.content, messages.c.demand_id)
                .where(
                    messages.c.protocol_number == protocol_number,
                    messages.c.purpose == "receipt",
                    messages.c.subject_key == "",
                    messages.c.status == "pending",
                )
                .with_for_update()
            )
        ).first()
        if receipt is None:
            return False
        tried = await uow.session.scalar(
            sa.select(sa.func.count()).select_from(
                sa.select(deliveries.c.id)
                .where(deliveries.c.message_id == receipt.id)
                .where(
                    (deliveries.c.status != "queued")
                    | (deliveries.c.attempts > 0)
                    | (deliveries.c.provider_index > 0)
                )
                .with_for_update()
                .subquery()
            )
        )
        if tried:
            return False
        content = MessageContent.model_validate(receipt.content)
        if any(d.demand_id == info.demand_id for d in content.demands):
            return True
        folded = content.model_copy(update={"demands": (*content.demands, info)})
        await uow.session.execute(
            messages.update()
            .where(messages.c.id == receipt.id)
            .values(
                content=folded.model_dump(mode="json"),
                demand_id=receipt.demand_id or info.demand_id,
                updated_at=uow.clock.now(),
            )
        )
        return True

    async def demand_answered(self, event: DemandAnswered, uow: UnitOfWork) -> None:
        """The copy of the conclusive answer."""
        await self._contacts.write(uow)
        demand_type = await uow.session.scalar(
            sa.select(demands.c.demand_type).where(demands.c.demand_id == event.demand_id)
        )
        answer = AnswerInfo(
            demand_id=event.demand_id,
            demand_type=demand_type,
            outcome=event.outcome,
            text=event.text,
            legal_basis=event.legal_basis,
            answered_at=event.answered_at,
            reanalysis_allowed=event.reanalysis_allowed,
            reanalysis_business_days=(
                reanalysis_business_days(event.answered_at.date())
                if event.reanalysis_allowed
                else None
            ),
        )
        await self._create(
            uow,
            event.protocol_number,
            "answer",
            subject_key=str(event.demand_id),
            demand_id=event.demand_id,
            answer=answer,
        )

    async def access_fulfilled(self, event: AccessRequestFulfilled, uow: UnitOfWork) -> None:
        """The notice that the copy of the records is ready."""
        await self._contacts.write(uow)
        access = AccessInfo(request_id=event.request_id, fulfilled_at=event.fulfilled_at)
        await self._create(
            uow,
            event.protocol_number,
            "access_fulfilled",
            subject_key=str(event.request_id),
            access=access,
        )

    async def _create(
        self,
        uow: UnitOfWork,
        protocol_number: str,
        purpose: Purpose,
        *,
        subject_key: str,
        demand_id: uuid.UUID | None = None,
        demands: tuple[DemandInfo, ...] = (),
        answer: AnswerInfo | None = None,
        access: AccessInfo | None = None,
    ) -> None:
        """Create a message about a stored protocol, unless it exists already or the
        protocol is not stored here (never opened here, or purged)."""
        stored = (
            (
                await uow.session.execute(
                    sa.select(protocols).where(protocols.c.protocol_number == protocol_number)
                )
            )
            .mappings()
            .first()
        )
        if stored is None:
            # never opened here (before this service existed) or already purged
            log.info(
                "no contact data for the protocol; nothing to send", extra={"purpose": purpose}
            )
            return
        operator = await self.rt.operator(uow, stored["ans_registry"])
        if operator is None:
            raise OperatorUnknown("the operator's registration has not arrived yet")
        new = _new_message(
            dict(stored),
            operator,
            purpose,
            subject_key=subject_key,
            demand_id=demand_id,
            demands=demands,
            answer=answer,
            access=access,
            cause=uow.cause,
        )
        await self._create_all(uow, [new])

    async def _create_all(self, uow: UnitOfWork, new: list[lifecycle.NewMessage]) -> list[bool]:
        """Create the messages (one round trip); per message, whether it was created."""
        statuses = await lifecycle.create_messages(uow, new)
        if "pending" in statuses:
            uow.after_commit(self.rt.wake_dispatcher)
        return [status is not None for status in statuses]

    async def purge_requested(self, event: PurgeRequested, uow: UnitOfWork) -> None:
        """Delete the protocol's messages and addresses; confirm with ``records.purged``."""
        await self._contacts.write(uow)
        if OWNER not in event.owners:
            return
        classes = tuple(c for c in event.record_classes if c in OWNED_CLASSES)
        if not classes:
            return
        if "notification" in classes:
            await self._purge_protocol(uow, event.protocol_number)
        uow.publish(
            NotificationRecordsPurged(
                protocol_number=event.protocol_number,
                ans_registry=event.ans_registry,
                purge_request_id=event.purge_request_id,
                record_classes=classes,
                purged_at=uow.clock.now(),
                owner=OWNER,
                anonymized=False,
            )
        )

    async def _purge_protocol(self, uow: UnitOfWork, protocol_number: str) -> None:
        provider_ids = (
            await uow.session.execute(
                sa.select(deliveries.c.provider, deliveries.c.provider_message_id).where(
                    deliveries.c.protocol_number == protocol_number,
                    deliveries.c.provider_message_id.isnot(None),
                )
            )
        ).all()
        for provider, provider_message_id in provider_ids:
            await uow.session.execute(
                callbacks.delete().where(
                    callbacks.c.provider == provider,
                    callbacks.c.provider_message_id == provider_message_id,
                )
            )
        # deliveries and their timelines go with their messages (ON DELETE CASCADE)
        await uow.session.execute(
            messages.delete().where(messages.c.protocol_number == protocol_number)
        )
        await uow.session.execute(
            demands.delete().where(demands.c.protocol_number == protocol_number)
        )
        await uow.session.execute(
            protocols.delete().where(protocols.c.protocol_number == protocol_number)
        )


def _new_message(
    protocol: Mapping[str, Any],
    operator: tuple[str, Policy],
    purpose: Purpose,
    *,
    subject_key: str,
    demand_id: uuid.UUID | None = None,
    demands: tuple[DemandInfo, ...] = (),
    answer: AnswerInfo | None = None,
    access: AccessInfo | None = None,
    cause: Envelope | None,
) -> lifecycle.NewMessage:
    """The message about ``protocol`` (its stored row) from its operator (name, policy),
    traced as the event that ``cause``d it (or the running span)."""
    name, policy = operator
    ans = protocol["ans_registry"]
    content = MessageContent(
        purpose=purpose,
        protocol_number=protocol["protocol_number"],
        opened_at=protocol["opened_at"],
        contact_channel=protocol["channel"],
        timezone=protocol["timezone"],
        beneficiary_name=domain.first_name(protocol["name"]),
        branding=policy.branding(ans, name),
        demands=demands,
        answer=answer,
        access=access,
    )
    return lifecycle.NewMessage(
        content=content,
        ans_registry=ans,
        subject_key=subject_key,
        demand_id=demand_id,
        contacts=domain.Contacts(
            email=protocol["email"], phone=protocol["phone"], whatsapp=protocol["whatsapp"]
        ),
        preferred=protocol["preferred_channels"],
        policy=policy,
        trace_headers=(dict(cause.trace_headers) if cause is not None else current_trace_headers()),
    )


def event_consumers(
    rt: Runtime,
    kafka: KafkaSettings,
    dead_letters: DeadLetterPublisher,
    *,
    name: str = "notification-svc",
    config: ConsumerConfig | None = None,
) -> list[ConsumerRunner]:
    """The consumers: ``operator.events`` in a group of its own, so that messages can wait
    for an operator's registration while the operators keep flowing."""
    handlers = NotificationHandlers(rt).handlers()
    config = config or ConsumerConfig()
    common: dict[str, Any] = {
        "sessions": rt.sessions,
        "kafka": kafka,
        "clock": rt.clock,
        "source": rt.source,
        "dead_letters": dead_letters,
    }
    return [
        ConsumerRunner(
            name=f"{name}.operators",
            topics=["operator.events"],
            handlers={"operator.upserted": handlers["operator.upserted"]},
            config=config,
            **common,
        ),
        ConsumerRunner(
            name=name,
            topics=["protocol.events", "retention.events"],
            handlers={t: h for t, h in handlers.items() if t != "operator.upserted"},
            # every row these handlers lock is one protocol's, and lanes keep a
            # protocol's partitions of both topics together: lanes never wait on each other
            config=replace(config, lanes=EVENT_LANES),
            **common,
        ),
    ]
