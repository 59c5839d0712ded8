"""protocol-svc's consumer: contact-center facts become protocols; purge requests are done.

``contact-center.inbound``

Every record is validated twice: against its contract by the consumer runner (shape), then
here (registered operator, CPF check digits, phone and e-mail normalization, deadline
rule, conclusive answer). A record that fails either goes to ``protocol-svc.dlq`` with a
reason naming the field (``beneficiary.cpf: ...``), never its value, and the consumer
moves on; a dead letter can be replayed once the cause is fixed (e.g. the operator is
registered).

Redelivery of the same event (same ``ce_id``) is absorbed by the inbox. A contact opened
twice under the same ``contact_id`` (a new event id, or the same contact also opened over
HTTP) keeps its first protocol.

``retention.events``
    ``retention.purge_requested`` naming this service among its owners deletes or
    anonymizes the protocol's records and is confirmed with ``records.purged``; a request
    repeated under the same id is confirmed once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from protocol_svc import operations as ops
from protocol_svc import repository as repo
from protocol_svc.operations import Row, Runtime
from protocol_svc.schemas import BeneficiaryIn, DemandIn, InteractionIn
from rn623_events.consumer import (
    ConsumerConfig,
    ConsumerRunner,
    Handler,
    PermanentError,
    typed_handler,
)
from rn623_events.contracts import inbound, retention
from rn623_events.db import UnitOfWork
from rn623_events.dlq import DeadLetterPublisher, describe_error
from rn623_events.envelope import Envelope
from rn623_events.registry import Event
from rn623_events.settings import KafkaSettings

# A complaint that names neither a protocol nor a known contact opens a protocol on this
# channel: complaints from NIP, Procon or consumidor.gov.br reach the operator online.
COMPLAINT_CHANNEL = "web"


@contextmanager
def refusals(at: str = "") -> Iterator[None]:
    """Turn an operation's refusal, or input that does not validate, into a permanent
    error (dead letter, no retries) naming the field, prefixed with ``at``."""
    try:
        yield
    except ValidationError as exc:
        raise PermanentError(describe_error(exc, at=at)) from None
    except ops.InconclusiveAnswer as exc:
        raise PermanentError(
            "; ".join(f"{p.field}: {p.message} ({p.rule_id})" for p in exc.problems)
        ) from None
    except ops.Conflict as exc:
        raise PermanentError(f"{exc.kind}: {exc.detail}") from None
    except ops.OperationError as exc:
        raise PermanentError(str(exc)) from None


def authorized(sources: Mapping[str, Sequence[str]], handler: Handler) -> Handler:
    """``handler`` for records whose CloudEvents source may act for their operator.

    ``sources`` maps each contact-center platform (``ce_source``) to the ANS registrations
    it serves (``*``: all); empty, every source may act for every operator.
    """

    async def run(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if sources:
            allowed = sources.get(envelope.source, ())
            registry = getattr(event, "ans_registry", None)
            if "*" not in allowed and registry not in allowed:
                raise PermanentError("ans_registry: this source may not act for this operator")
        await handler(event, envelope, uow)

    return run


class InboundHandlers:
    """One handler per ``contact-center.inbound`` event type."""

    def __init__(self, rt: Runtime, sources: Mapping[str, Sequence[str]] | None = None) -> None:
        self.rt = rt
        self.sources = dict(sources or {})

    def handlers(self) -> dict[str, Handler]:
        """Handlers keyed by event type, for the consumer runner."""
        inbound_handlers = {
            "contact.opened": typed_handler(inbound.ContactOpened, self.contact_opened),
            "interaction.recorded": typed_handler(
                inbound.InboundInteractionRecorded, self.interaction_recorded
            ),
            "demand.answered": typed_handler(inbound.InboundDemandAnswered, self.demand_answered),
            "complaint.received": typed_handler(inbound.ComplaintReceived, self.complaint_received),
        }
        return {
            **{t: authorized(self.sources, h) for t, h in inbound_handlers.items()},
            "retention.purge_requested": typed_handler(
                retention.PurgeRequested, self.purge_requested
            ),
        }

    async def contact_opened(self, event: inbound.ContactOpened, uow: UnitOfWork) -> None:
        """Issue the contact's protocol (and register its first demand)."""
        operator = await self._operator(uow.session, event.ans_registry)
        if await repo.find_protocol_by_key(
            uow.session, event.ans_registry, idempotency_key=None, contact_id=event.contact_id
        ):
            return  # this contact already has its protocol
        with refusals(at="beneficiary."):
            beneficiary = BeneficiaryIn.model_validate(event.beneficiary.model_dump())
        with refusals(at="demand."):
            protocol = await ops.open_protocol(
                uow,
                self.rt,
                operator,
                channel=event.channel,
                direction=event.direction,
                beneficiary=beneficiary,
                contact_id=event.contact_id,
                opened_at=event.occurred_at,
            )
            if event.demand is not None:
                first = event.demand
                await ops.register_demand(
                    uow,
                    operator,
                    protocol["number"],
                    DemandIn(
                        demand_type=first.demand_type,
                        category=first.category,
                        description=first.description,
                        requested_at=first.requested_at or event.occurred_at,
                    ),
                    protocol["opened_at"],
                    at="demand.",
                )

    async def interaction_recorded(
        self, event: inbound.InboundInteractionRecorded, uow: UnitOfWork
    ) -> None:
        """Add the interaction to the contact's protocol."""
        await self._operator(uow.session, event.ans_registry)
        protocol = await self._protocol_of_contact(uow.session, event)
        if protocol is None:
            raise PermanentError("contact_id: no protocol for this contact (contact.opened first)")
        with refusals():
            interaction = InteractionIn.model_validate(
                event.model_dump(include=set(InteractionIn.model_fields))
            )
            await ops.record_interaction(uow, self.rt, protocol, interaction)

    async def demand_answered(self, event: inbound.InboundDemandAnswered, uow: UnitOfWork) -> None:
        """Record the agent's conclusive answer."""
        await self._operator(uow.session, event.ans_registry)
        ref = event.demand_ref
        protocol = await repo.get_protocol(uow.session, ref.protocol_number)
        if protocol is None or protocol["ans_registry"] != event.ans_registry:
            raise PermanentError("demand_ref.protocol_number: no such protocol of this operator")
        with refusals():
            try:
                demand = await ops.find_demand(uow.session, ref.protocol_number, ref.demand_id)
            except ops.NotFound:
                raise ops.InvalidInput(
                    "demand_ref.demand_id", "is not a demand of this protocol", "unknown_demand"
                ) from None
            await ops.answer_demand(
                uow,
                self.rt,
                protocol,
                demand,
                outcome=event.outcome,
                text=event.text,
                legal_basis=event.legal_basis,
                answered_by=event.answered_by,
                answered_at=event.answered_at,
            )

    async def complaint_received(self, event: inbound.ComplaintReceived, uow: UnitOfWork) -> None:
        """Register the complaint on its protocol, the contact's, or a new one."""
        operator = await self._operator(uow.session, event.ans_registry)
        protocol: Row | None
        if event.protocol_number is not None:
            protocol = await repo.get_protocol(uow.session, event.protocol_number)
            if protocol is None or protocol["ans_registry"] != event.ans_registry:
                raise PermanentError("protocol_number: no such protocol of this operator")
        else:
            protocol = await self._protocol_of_contact(uow.session, event)
        with refusals():
            if protocol is None:
                protocol = await ops.open_protocol(
                    uow,
                    self.rt,
                    operator,
                    channel=COMPLAINT_CHANNEL,
                    direction="inbound",
                    beneficiary=BeneficiaryIn(),
                    contact_id=event.contact_id,
                )
            await ops.register_complaint(
                uow,
                self.rt,
                operator,
                protocol,
                ops.ComplaintFacts(
                    source=event.source,
                    classification=event.classification,
                    external_reference=event.external_reference,
                    received_at=event.received_at,
                    coverage=event.coverage,
                ),
            )

    async def purge_requested(self, event: retention.PurgeRequested, uow: UnitOfWork) -> None:
        """Purge the protocol's records of the requested classes and confirm."""
        if self.rt.source not in event.owners:
            return
        with refusals():
            await ops.purge_records(
                uow,
                self.rt,
                purge_request_id=event.purge_request_id,
                protocol_number=event.protocol_number,
                ans_registry=event.ans_registry,
                record_classes=event.record_classes,
            )

    async def _operator(self, session: AsyncSession, ans_registry: str) -> Row:
        operator = await self.rt.operator(session, ans_registry)
        if operator is None:
            raise PermanentError("ans_registry: operator is not registered")
        return operator

    @staticmethod
    async def _protocol_of_contact(
        session: AsyncSession, event: inbound.InboundEvent
    ) -> Row | None:
        return await repo.find_protocol_by_key(
            session, event.ans_registry, idempotency_key=None, contact_id=event.contact_id
        )


def event_consumer(
    rt: Runtime,
    kafka: KafkaSettings,
    dead_letters: DeadLetterPublisher,
    *,
    name: str = "protocol-svc",
    config: ConsumerConfig | None = None,
    sources: Mapping[str, Sequence[str]] | None = None,
) -> ConsumerRunner:
    """The consumer of ``contact-center.inbound`` and ``retention.events``."""
    return ConsumerRunner(
        name=name,
        topics=[inbound.TOPIC, retention.TOPIC],
        sessions=rt.sessions,
        kafka=kafka,
        clock=rt.clock,
        source=rt.source,
        dead_letters=dead_letters,
        handlers=InboundHandlers(rt, sources).handlers(),
        config=config,
    )
