"""A contact-center day for two operators, then months and years of moved clock.

Every step goes through the public contract (HTTP APIs and ``contact-center.inbound``);
every outcome is read back from the service that owns it and compared with what the
rules say: deadlines met or breached on the right dates, one receipt per protocol on the
right channel, recordings purged after 90 days and records after 2 and 5 years with
disposal certificates, the IGR of the quarter.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaProducer

from rn623_e2e.platform import Platform
from rn623_e2e.report import Report
from rn623_e2e.traffic import (
    CHANNELS,
    COMPLAINT_SOURCES,
    DEMAND_TYPES,
    OUTCOMES,
    DemandCase,
    Operator,
    ProtocolCase,
    beneficiary,
    bounded,
    eventually,
    expect_ok,
    operators_of_the_day,
)
from rn623_events.contracts.inbound import (
    ContactOpened,
    DemandRef,
    FirstDemand,
    InboundDemandAnswered,
    RawBeneficiary,
)
from rn623_events.envelope import make_envelope
from rn623_rulebook.igr import MonthFigures, monthly_igr, quarterly_igr

BRT = ZoneInfo("America/Sao_Paulo")
SOURCE = "cc-e2e"
ANSWER_TEXTS = {
    "authorized": "Autorizamos o procedimento solicitado. A guia já está liberada para uso.",
    "partially_authorized": "Autorizamos a consulta; o exame complementar não tem cobertura.",
    "denied": "O procedimento não tem cobertura no seu plano, conforme a cláusula citada.",
    "informed": "A rede credenciada para esse atendimento está listada no aplicativo.",
    "resolved": "O reembolso foi aprovado e será depositado em até cinco dias úteis.",
}
LEGAL_BASIS = "Cláusula 12.3 do contrato; Rol de Procedimentos da ANS (RN 465/2021)."
RECORD_CLASSES = {"recording", "interaction_record", "protocol_record", "notification"}


def parse(moment: str) -> datetime:
    """An RFC 3339 instant from an API."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def quarter_of(moment: datetime) -> tuple[str, list[date]]:
    """The quarter (``2026Q4``) of ``moment`` in Brasília time, and its three months."""
    local = moment.astimezone(BRT)
    q = (local.month - 1) // 3
    months = [date(local.year, 3 * q + m, 1) for m in (1, 2, 3)]
    return f"{local.year}Q{q + 1}", months


class Day:
    """The day's traffic and every check of its outcomes; see the module docstring."""

    section = "day"

    def __init__(self, platform: Platform, report: Report, *, per_channel: int, seed: int) -> None:
        self.platform = platform
        self.report = report
        self.per_channel = per_channel
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.operators = operators_of_the_day(self.rng)
        self.cases: list[ProtocolCase] = []
        self.nip: Counter[str] = Counter()
        self.beneficiary_months: set[date] = set()
        self.personal: list[str] = []
        self.client = httpx.AsyncClient(timeout=30.0, headers=platform.headers())
        self.producer: AIOKafkaProducer | None = None
        self.start: datetime = platform.now()

    # --- helpers --------------------------------------------------------------------------

    def url(self, service: str, path: str) -> str:
        """Absolute URL of ``path`` on ``service``."""
        return f"{self.platform.url(service)}{path}"

    async def get(self, service: str, path: str, **params: Any) -> Any:
        """GET JSON from a service (admin token), failing loudly on an error status."""
        response = await self.client.get(self.url(service, path), params=params or None)
        return expect_ok(response, f"GET {service} {path}")

    async def send(self, method: str, service: str, path: str, body: Any = None, **kw: Any) -> Any:
        """A write through the public API, counted as an event sent."""
        self.report.figures.events_sent += 1
        response = await self.client.request(method, self.url(service, path), json=body, **kw)
        return expect_ok(response, f"{method} {service} {path}")

    async def publish(self, event: Any) -> None:
        """Publish a contact-center record on ``contact-center.inbound``."""
        assert self.producer is not None
        envelope = make_envelope(event, source=SOURCE, time=self.platform.now())
        await self.producer.send_and_wait(
            envelope.topic, key=envelope.key, value=envelope.value(), headers=envelope.headers()
        )
        self.report.figures.events_sent += 1

    def check(self, name: str, ok: bool, **kw: Any) -> bool:
        """Record a check of this section."""
        return self.report.check(self.section, name, ok, **kw)

    # --- the run --------------------------------------------------------------------------

    async def run(self) -> None:
        """Play the day, then move the clock and check what the rules say must happen."""
        assert self.platform.broker is not None
        self.producer = AIOKafkaProducer(bootstrap_servers=self.platform.broker.bootstrap_servers)
        await self.producer.start()
        try:
            await self.setup_operators()
            await self.open_protocols()
            await self.check_fan_out()
            await self.work_the_day()
            await self.check_messages_sent_once()
            await self.check_access_request()
            await self.days_later()
            await self.ninety_days_later()
            await self.years_later()
        finally:
            await self.producer.stop()
            await self.client.aclose()

    async def put_beneficiaries(self) -> None:
        """Send the beneficiary counts of the day's quarter up to the current month (a
        future month is refused), while that quarter is still open."""
        quarter, months = quarter_of(self.start)
        now = self.platform.now()
        if quarter_of(now)[0] != quarter:
            return
        current = now.astimezone(BRT).date().replace(day=1)
        for op in self.operators:
            for month in months:
                if month <= current and month not in self.beneficiary_months:
                    await self.send(
                        "PUT",
                        "igr-svc",
                        f"/v1/operators/{op.ans}/beneficiaries/{month:%Y-%m}",
                        {op.coverage: op.beneficiaries},
                    )
        self.beneficiary_months |= {m for m in months if m <= current}

    async def setup_operators(self) -> None:
        """Register both operators and their beneficiary counts for the quarter."""
        for op in self.operators:
            await self.send("PUT", "protocol-svc", f"/v1/operators/{op.ans}", op.body())
        await self.put_beneficiaries()

        async def known_everywhere() -> bool:
            for op in self.operators:
                calendar = await self.client.get(
                    self.url("deadline-svc", "/v1/calendar/add-business-days"),
                    params={"start": f"{self.start:%Y-%m-%d}", "days": 1, "operator": op.ans},
                )
                if calendar.status_code != 200:
                    return False
            return True

        self.check(
            "operators reach deadline-svc through operator.events",
            bool(await eventually(known_everywhere, within=60)),
        )

    async def open_protocols(self) -> None:
        """Open protocols on every channel, by HTTP and by Kafka, for both operators."""
        jobs = []
        for op in self.operators:
            for n in range(self.per_channel * len(CHANNELS)):
                who = beneficiary(self.rng, n)
                self.personal += who.personal_data()
                case = ProtocolCase(
                    op, CHANNELS[n % len(CHANNELS)], "kafka" if n % 4 == 3 else "http", who
                )
                self.cases.append(case)
                jobs.append(self.open_protocol(case, DEMAND_TYPES[n % len(DEMAND_TYPES)], n))
        await bounded(jobs, 8)
        opened = [c for c in self.cases if c.number]
        numbers = {c.number for c in opened}
        self.report.count(
            self.section, "protocols opened (HTTP and contact-center.inbound)",
            expected=len(self.cases), observed=len(opened),
        )  # fmt: skip
        self.check("protocol numbers are unique", len(numbers) == len(opened))

    async def open_protocol(self, case: ProtocolCase, demand_type: str, n: int) -> None:
        """Open one protocol with its first demand; Kafka ones are found by the CPF."""
        demand = {"demand_type": demand_type, "description": "Pedido registrado no atendimento."}
        direction = "outbound" if n % 5 == 4 else "inbound"
        if case.via == "http":
            body = {
                "operator": case.operator.ans,
                "channel": case.channel,
                "direction": direction,
                "beneficiary": case.who.body(),
                "demand": demand,
            }
            key = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
            created = await self.send("POST", "protocol-svc", "/v1/protocols", body, headers=key)
            if n % 6 == 0:  # a contact center retrying the same call gets the same protocol
                again = await self.send("POST", "protocol-svc", "/v1/protocols", body, headers=key)
                self.check(
                    "a retried POST /v1/protocols returns the same protocol",
                    again["protocol_number"] == created["protocol_number"],
                )
            case.number = created["protocol_number"]
            case.opened_at = parse(created["opened_at"])
            first = created["demand"]
            case.demands.append(DemandCase(first["id"], demand_type, parse(first["due_at"])))
            return
        raw = case.who.body()
        await self.publish(
            ContactOpened(
                ans_registry=case.operator.ans,
                contact_id=f"cc-{uuid.uuid4().hex}",
                channel=case.channel,
                direction=direction,
                occurred_at=self.platform.now(),
                beneficiary=RawBeneficiary(**raw),
                demand=FirstDemand(**demand),
            )
        )

        async def issued() -> dict[str, Any] | None:
            page = await self.get(
                "protocol-svc", "/v1/protocols", operator=case.operator.ans, cpf=case.who.cpf
            )
            return page["items"][0] if page["items"] else None

        summary = await eventually(issued, within=60)
        if summary is None:
            return
        detail = await self.get("protocol-svc", f"/v1/protocols/{summary['protocol_number']}")
        case.number = detail["protocol_number"]
        case.opened_at = parse(detail["opened_at"])
        first = detail["demands"][0]
        case.demands.append(DemandCase(first["id"], demand_type, parse(first["due_at"])))

    async def check_fan_out(self) -> None:
        """Every protocol reaches deadline-, notification- and retention-svc, once."""
        results = await bounded([self.fan_out_of(c) for c in self.cases if c.number], 8)
        for name in (
            "deadline scheduled with protocol-svc's due date",
            "receipt on the expected channel",
            "retention scheduled",
        ):
            self.report.count(
                self.section, f"fan-out: {name}",
                expected=len(results), observed=sum(1 for r in results if r[name]),
            )  # fmt: skip

    async def fan_out_of(self, case: ProtocolCase) -> dict[str, bool]:
        """Whether one protocol's deadline, receipt and retention schedule arrived correctly."""
        demand = case.demands[0]

        async def deadline() -> bool:
            page = await self.get("deadline-svc", "/v1/deadlines", protocol=case.number)
            return any(
                d["demand_id"] == demand.id and parse(d["due_at"]) == demand.due_at
                for d in page["items"]
            )

        async def receipt() -> bool:
            page = await self.get(
                "notification-svc", "/v1/notifications", protocol=case.number, purpose="receipt"
            )
            items = page["items"]
            if len(items) != 1 or items[0]["status"] not in ("delivered", "sent"):
                return False
            message = items[0]
            due = demand.due_at.astimezone(BRT)
            channel = message["delivered_channel"] or next(
                (d["channel"] for d in message["deliveries"] if d["status"] == "sent"), None
            )
            return channel == case.who.expected_channel() and (
                demand.demand_type == "urgent_emergency" or f"{due:%d/%m/%Y}" in message["text"]
            )

        async def retention() -> bool:
            body = await self.get("retention-svc", "/v1/retention", protocol=case.number)
            entries = {e["record_class"]: e for e in body["entries"]}
            recording = entries.get("recording", {}).get("retain_until")
            return (
                set(entries) >= RECORD_CLASSES
                and recording is not None
                and (parse(recording) - parse(body["contact_at"]) == timedelta(days=90))
            )

        return {
            "deadline scheduled with protocol-svc's due date": bool(
                await eventually(deadline, within=60)
            ),
            "receipt on the expected channel": bool(await eventually(receipt, within=90)),
            "retention scheduled": bool(await eventually(retention, within=60)),
        }  # fmt: skip

    async def work_the_day(self) -> None:
        """Interactions, answers (some by Kafka), re-analyses, later demands, complaints,
        a legal hold and an access request."""
        live = [c for c in self.cases if c.number]
        await bounded([self.work_protocol(n, c) for n, c in enumerate(live)], 8)
        for op in self.operators:
            mine = [c for c in live if c.operator is op]
            for k, source in enumerate(COMPLAINT_SOURCES):
                await self.complaint_on(mine[(3 * k + 1) % len(mine)], source)
            await self.complaint_opening_protocol(op, "nip")
        held = next(c for c in live if c.resolved and not c.complaints and not c.recording)
        hold = await self.send(
            "POST", "retention-svc", "/v1/legal-holds",
            {"operator": held.operator.ans, "scope": "protocol", "protocol_number": held.number,
             "reason": "Ação judicial 0001234-56.2026.8.26.0100 em andamento."},
        )  # fmt: skip
        held.legal_hold = hold["id"]
        asker = live[1]
        request = await self.send(
            "POST", "retention-svc", "/v1/access-requests",
            {"operator": asker.operator.ans, "protocol_number": asker.number, "scope": "protocol"},
        )  # fmt: skip
        asker.access_request = request["id"]
        self.check(
            "access request due in 72 hours",
            parse(request["due_at"]) - parse(request["requested_at"]) == timedelta(hours=72),
            observed=request["due_at"],
        )

    async def work_protocol(self, n: int, case: ProtocolCase) -> None:
        """The rest of one protocol's day."""
        if n % 3 == 0:
            case.recording = True
            await self.send(
                "POST", "protocol-svc", f"/v1/protocols/{case.number}/interactions",
                {"kind": "recording", "recording_uri": f"s3://cc-recordings/{uuid.uuid4()}.wav",
                 "duration_seconds": 180 + n},
            )  # fmt: skip
        else:
            await self.send(
                "POST", "protocol-svc", f"/v1/protocols/{case.number}/interactions",
                {"kind": "transcript", "author": "agent", "content": "Atendimento registrado."},
            )  # fmt: skip
        if n % 7 == 2:
            later = await self.send(
                "POST", "protocol-svc", f"/v1/protocols/{case.number}/demands",
                {"demand_type": "non_assistance", "description": "Segunda via do boleto."},
            )  # fmt: skip
            case.demands.append(DemandCase(later["id"], "non_assistance", parse(later["due_at"])))
        if n % 3 == 2:
            return  # left open today: answered late or never
        for k, demand in enumerate(list(case.demands)):
            outcome = OUTCOMES[(n + k) % len(OUTCOMES)]
            await self.answer(case, demand, outcome, "on_time", by_kafka=case.via == "kafka")
            if outcome in ("denied", "partially_authorized"):
                again = await self.send(
                    "POST", "protocol-svc",
                    f"/v1/protocols/{case.number}/demands/{demand.id}/reanalysis",
                    {"description": "Peço reanálise pela ouvidoria."},
                )  # fmt: skip
                reanalysis = DemandCase(
                    again["id"], "reanalysis", parse(again["due_at"]), reanalysis_of=demand.id
                )
                case.demands.append(reanalysis)
                await self.answer(case, reanalysis, "authorized", "on_time")

    async def answer(
        self,
        case: ProtocolCase,
        demand: DemandCase,
        outcome: str,
        when: str,
        *,
        by_kafka: bool = False,
    ) -> None:
        """Answer a demand conclusively, by HTTP or as a contact-center record."""
        legal_basis = LEGAL_BASIS if outcome in ("denied", "partially_authorized") else None
        if by_kafka:
            await self.publish(
                InboundDemandAnswered(
                    ans_registry=case.operator.ans,
                    contact_id=f"cc-{uuid.uuid4().hex}",
                    demand_ref=DemandRef(
                        protocol_number=case.number, demand_id=uuid.UUID(demand.id)
                    ),
                    outcome=outcome,
                    text=ANSWER_TEXTS[outcome],
                    legal_basis=legal_basis,
                    answered_at=self.platform.now(),
                )
            )

            async def answered() -> bool:
                detail = await self.get("protocol-svc", f"/v1/protocols/{case.number}")
                return any(a["demand_id"] == demand.id for a in detail["answers"])

            if not await eventually(answered, within=60):
                self.check(
                    "a Kafka answer reaches protocol-svc", False, observed=demand.demand_type
                )
                return
        else:
            body = {"outcome": outcome, "text": ANSWER_TEXTS[outcome], "legal_basis": legal_basis}
            path = f"/v1/protocols/{case.number}/demands/{demand.id}/answer"
            await self.send("POST", "protocol-svc", path, body)
        demand.answer, demand.outcome = when, outcome

    async def complaint_on(self, case: ProtocolCase, source: str) -> None:
        """A complaint linked to an existing protocol."""
        await self.send(
            "POST", "protocol-svc", "/v1/complaints",
            {"operator": case.operator.ans, "source": source, "protocol_number": case.number,
             "classification": "cobertura", "coverage": case.operator.coverage},
        )  # fmt: skip
        case.complaints.append(source)
        if source == "nip":
            self.nip[case.operator.ans] += 1

    async def complaint_opening_protocol(self, op: Operator, source: str) -> None:
        """A complaint that arrives with no protocol: protocol-svc opens one for it."""
        who = beneficiary(self.rng, 2)
        self.personal += who.personal_data()
        created = await self.send(
            "POST", "protocol-svc", "/v1/complaints",
            {"operator": op.ans, "source": source, "beneficiary": who.body(),
             "external_reference": f"NIP-{self.rng.randrange(10**8)}", "coverage": op.coverage},
        )  # fmt: skip
        self.nip[op.ans] += source == "nip"
        case = ProtocolCase(op, "web", "http", who, number=created["protocol_number"])
        case.opened_at = parse(created["registered_at"])
        case.complaints.append(source)
        self.cases.append(case)

    async def messages_of(self, case: ProtocolCase) -> list[dict[str, Any]]:
        """Every message notification-svc holds for a protocol."""
        page = await self.get(
            "notification-svc", "/v1/notifications", protocol=case.number, limit=200
        )
        items: list[dict[str, Any]] = page["items"]
        return items

    async def receipts_and_answers(self, case: ProtocolCase) -> list[dict[str, Any]]:
        """The protocol's receipts and answer copies (the records notice is checked with
        its access request: the collector may create it at any moment of the day)."""
        return [m for m in await self.messages_of(case) if m["purpose"] in ("receipt", "answer")]

    async def check_messages_sent_once(self) -> None:
        """Each protocol gets a receipt per demand (the first one folded into the contact's)
        and a copy of each answer, each handed to a provider once."""
        live = [c for c in self.cases if c.number and c.demands]

        async def settled() -> bool:
            for case in live:
                items = await self.receipts_and_answers(case)
                answers = sum(1 for m in items if m["purpose"] == "answer")
                if (
                    answers < case.answered_copies()
                    or len(items) - answers < len(case.demands)
                    or any(m["status"] not in ("delivered", "sent") for m in items)
                ):
                    return False
            return True

        self.check(
            "every receipt and answer copy delivered or sent",
            bool(await eventually(settled, within=120)),
        )
        emulated = await self.emulator_messages()
        for case in live:
            items = await self.receipts_and_answers(case)
            answers = [m for m in items if m["purpose"] == "answer"]
            self.report.count(
                self.section, f"answer copies of {case.via} protocol {case.number}",
                expected=case.answered_copies(), observed=len(answers),
            )  # fmt: skip
            sent_ids = {
                d["provider_message_id"]
                for m in items
                for d in m["deliveries"]
                if d["provider_message_id"]
            }
            at_provider = [m for m in emulated if m["external"] in sent_ids]
            self.report.count(
                self.section, f"provider calls for protocol {case.number}",
                expected=len(items), observed=len(at_provider),
            )  # fmt: skip

    async def emulator_messages(self) -> list[dict[str, Any]]:
        """What the provider emulators received, with the id notification-svc recorded."""
        out = []
        for m in await self.platform.provider_messages():
            # SMTP keeps the Message-ID notification-svc set; the HTTP providers their own id.
            external = (
                m.get("id") if m["provider"] != "smtp" else m.get("external_id") or m.get("id")
            )
            out.append({"external": external, "provider": m["provider"], "channel": m["channel"]})
        return out

    async def check_access_request(self) -> None:
        """The access request is fulfilled within 72 h and the beneficiary is told."""
        asker = next(c for c in self.cases if c.access_request)

        async def fulfilled() -> dict[str, Any] | None:
            body: dict[str, Any] = await self.get(
                "retention-svc", f"/v1/access-requests/{asker.access_request}"
            )
            return body if body["status"] == "fulfilled" else None

        request = await eventually(fulfilled, within=60)
        self.check("access request fulfilled", request is not None)
        if request is None:
            return
        self.check(
            "access request fulfilled before its 72 h",
            parse(request["fulfilled_at"]) <= parse(request["due_at"]),
        )
        bundle = await self.get(
            "retention-svc", f"/v1/access-requests/{asker.access_request}/bundle"
        )
        self.check("the bundle holds the protocol's records", asker.number in str(bundle))

        async def told() -> bool:
            return any(
                m["purpose"] == "access_fulfilled" and m["status"] in ("delivered", "sent")
                for m in await self.messages_of(asker)
            )

        self.check(
            "the beneficiary is told the records are ready (delivered or sent)",
            bool(await eventually(told, within=60)),
        )

    async def days_later(self) -> None:
        """20 days on: unanswered deadlines are breached; late answers count as late."""
        self.platform.advance(timedelta(days=20))
        await self.put_beneficiaries()
        open_now = [(c, d) for c in self.cases for d in c.demands if not d.answer]

        async def statuses() -> dict[str, str]:
            found: dict[str, str] = {}
            for case in {c.number: c for c, _ in open_now}.values():
                page = await self.get("deadline-svc", "/v1/deadlines", protocol=case.number)
                found.update({d["demand_id"]: d["status"] for d in page["items"]})
            return found

        async def all_breached() -> bool:
            found = await statuses()
            return all(found.get(d.id) == "breached" for _, d in open_now)

        await eventually(all_breached, within=60)
        found = await statuses()
        self.report.count(
            self.section, "deadlines breached when unanswered past their due date",
            expected=len(open_now),
            observed=sum(1 for _, d in open_now if found.get(d.id) == "breached"),
        )  # fmt: skip
        for k, (case, demand) in enumerate(open_now):
            if k % 2 == 0:
                await self.answer(case, demand, "informed", "late")
        await self.check_deadline_outcomes()

    async def check_deadline_outcomes(self) -> None:
        """Each deadline ends met, met late or breached, as its answer says."""
        expected = {"on_time": "met", "late": "met_late", None: "breached"}
        demands = [(c, d) for c in self.cases for d in c.demands]

        async def observed() -> dict[str, str]:
            found: dict[str, str] = {}
            for case in {c.number: c for c, _ in demands}.values():
                for d in (
                    await self.get("deadline-svc", "/v1/deadlines", protocol=case.number, limit=200)
                )["items"]:
                    found[d["demand_id"]] = d["status"]
            return found

        async def settled() -> dict[str, str] | None:
            found = await observed()
            return found if all(found.get(d.id) == expected[d.answer] for _, d in demands) else None

        found = await eventually(settled, within=60) or await observed()
        for answer, status in expected.items():
            subset = [d for _, d in demands if d.answer == answer]
            self.report.count(
                self.section, f"deadlines {status}",
                expected=len(subset), observed=sum(1 for d in subset if found.get(d.id) == status),
            )  # fmt: skip

    async def ninety_days_later(self) -> None:
        """91 days after the day: recordings are purged with certificates; the quarter's IGR."""
        self.platform.advance(self.start + timedelta(days=91) - self.platform.now())
        # A complaint extends every record class of its protocol, recordings included.
        recorded = [c for c in self.cases if c.recording and not c.complaints]
        complained = [c for c in self.cases if c.recording and c.complaints]

        async def recording_status(case: ProtocolCase) -> str:
            body = await self.get("retention-svc", "/v1/retention", protocol=case.number)
            entry = next(e for e in body["entries"] if e["record_class"] == "recording")
            return str(entry["status"])

        async def recordings_disposed() -> bool:
            return all([await recording_status(c) == "disposed" for c in recorded])

        await eventually(recordings_disposed, within=90)
        statuses = [await recording_status(c) for c in complained]
        self.report.count(
            self.section, "recordings of complained-about protocols kept past 90 days",
            expected=len(complained), observed=statuses.count("retained"),
        )  # fmt: skip
        gone = 0
        for case in recorded:
            detail = await self.get("protocol-svc", f"/v1/protocols/{case.number}")
            gone += all(
                i["recording_uri"] is None
                for i in detail["interactions"]
                if i["kind"] == "recording"
            )
        self.report.count(
            self.section, "recording references deleted after 90 days",
            expected=len(recorded), observed=gone,
        )  # fmt: skip
        await self.check_certificates("recording")
        await self.check_igr()

    async def check_certificates(self, record_class: str) -> None:
        """Every disposal has a certificate and each operator's chain verifies."""
        for op in self.operators:
            page = await self.get(
                "retention-svc", "/v1/disposal-certificates", operator=op.ans, limit=200
            )
            classes = Counter(rc for cert in page["items"] for rc in cert["record_classes"])
            self.check(
                f"disposal certificates name {record_class} ({op.segment} operator)",
                classes[record_class] > 0,
                observed=dict(classes),
            )
            verdict = await self.get(
                "retention-svc", "/v1/disposal-certificates/verify", operator=op.ans
            )
            self.check(
                f"certificate chain verifies ({op.segment} operator)",
                verdict["valid"],
                observed=verdict,
            )

    async def check_igr(self) -> None:
        """The closed quarter's IGR per operator equals the rulebook's from the NIP count."""
        quarter, months = quarter_of(self.start)
        this_month = self.start.astimezone(BRT).replace(day=1).date()
        for op in self.operators:
            figures = [
                MonthFigures(
                    self.nip[op.ans] if month == this_month else 0,
                    op.beneficiaries if month in self.beneficiary_months else 0,
                )
                for month in months
            ]
            expected_igr = quarterly_igr(figures)

            # The closer runs on its own timer: it may tick after the recordings' purge.
            async def closed_figures(ans: str = op.ans) -> Any:
                body = await self.get("igr-svc", f"/v1/igr/{ans}", quarter=quarter)
                return body if body["status"] == "closed" else None

            body = await eventually(closed_figures, within=60) or await self.get(
                "igr-svc", f"/v1/igr/{op.ans}", quarter=quarter
            )
            coverage = next(c for c in body["figures"]["coverages"] if c["coverage"] == op.coverage)
            self.report.count(
                self.section, f"NIP complaints in the IGR of {quarter} ({op.segment})",
                expected=self.nip[op.ans], observed=coverage["complaints"],
            )  # fmt: skip
            self.check(
                f"IGR médio of {quarter} ({op.segment}) as the rulebook computes it",
                coverage["igr_medio"] is not None
                and float(coverage["igr_medio"]) == float(expected_igr or 0),
                expected=str(expected_igr), observed=coverage["igr_medio"],
                detail=f"monthly {monthly_igr(self.nip[op.ans], op.beneficiaries)}",
            )  # fmt: skip
            self.check(
                f"quarter {quarter} is closed after its end",
                body["status"] == "closed",
                observed=body["status"],
            )

    async def years_later(self) -> None:
        """2 and 5 years on: resolved records are purged; held, complained-about and
        unresolved ones are kept until their own time."""
        self.platform.advance(self.start + timedelta(days=2 * 366 + 40) - self.platform.now())
        plain = [
            c
            for c in self.cases
            if c.demands and c.resolved and not c.complaints and not c.legal_hold
        ]
        kept = [c for c in self.cases if c.complaints or (c.demands and not c.resolved)]
        held = [c for c in self.cases if c.legal_hold]
        await self.expect_disposed(plain, "protocol records purged 2 years after resolution")
        await self.expect_kept(
            kept + held, "complained-about, unresolved and held protocols kept at 2 years"
        )
        for case in held:
            await self.send("DELETE", "retention-svc", f"/v1/legal-holds/{case.legal_hold}",
                            params={"reason": "Processo arquivado."})  # fmt: skip
        await self.expect_disposed(held, "a released legal hold lets its purge run")
        await self.check_certificates("protocol_record")
        self.platform.advance(self.start + timedelta(days=5 * 366 + 40) - self.platform.now())
        resolved_complaints = [
            c for c in self.cases if c.complaints and (not c.demands or c.resolved)
        ]
        await self.expect_disposed(
            resolved_complaints, "complaint-linked protocols purged after 5 years"
        )
        await self.expect_kept([c for c in self.cases if c.demands and not c.resolved],
                               "unresolved protocols are never purged")  # fmt: skip

    async def protocol_status(self, case: ProtocolCase) -> str:
        """``disposed`` when every record class of the protocol is disposed, else ``kept``."""
        body = await self.get("retention-svc", "/v1/retention", protocol=case.number)
        classes = {
            e["record_class"]: e["status"]
            for e in body["entries"]
            if e["record_class"] in RECORD_CLASSES - {"recording"}
        }
        return "disposed" if classes and all(s == "disposed" for s in classes.values()) else "kept"

    async def expect_disposed(self, cases: list[ProtocolCase], name: str) -> None:
        """Wait for the purge of ``cases``, then check it and that the owners deleted the data."""

        async def done() -> bool:
            return all([await self.protocol_status(c) == "disposed" for c in cases])

        await eventually(done, within=120)
        disposed = [c for c in cases if await self.protocol_status(c) == "disposed"]
        self.report.count(self.section, name, expected=len(cases), observed=len(disposed))
        cleared = 0
        for case in disposed:
            detail = await self.client.get(self.url("protocol-svc", f"/v1/protocols/{case.number}"))
            messages = await self.messages_of(case)
            anonymous = detail.status_code == 404 or detail.json().get("anonymized_at") is not None
            cleared += anonymous and not messages
        self.report.count(
            self.section, f"{name}: protocol-svc anonymized and notification-svc deleted",
            expected=len(disposed), observed=cleared,
        )  # fmt: skip

    async def expect_kept(self, cases: list[ProtocolCase], name: str) -> None:
        """Check that none of ``cases`` was purged."""
        statuses = [await self.protocol_status(c) for c in cases]
        self.report.count(self.section, name, expected=len(cases), observed=statuses.count("kept"))
