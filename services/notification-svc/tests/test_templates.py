"""Message templates and their renderer (pure: no I/O, no servers)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from notification_svc.content import (
    AccessInfo,
    AnswerInfo,
    Branding,
    DemandInfo,
    MessageContent,
    Purpose,
)
from notification_svc.rendering import (
    DEMAND_TYPE_LABELS,
    OUTCOME_LABELS,
    SHORT_TEXT_MAX,
    SHORT_TEXT_TARGET,
    TEMPLATE_NAMES,
    WHATSAPP_BODY_MAX,
    WHATSAPP_PARAMETER_MAX,
    WHATSAPP_TEMPLATE_BODIES,
    RenderedMessage,
    render,
)

pytestmark = pytest.mark.unit

PROTOCOL = "12345620251124000042"
SP = ZoneInfo("America/Sao_Paulo")
OPENED = datetime(2025, 11, 24, 17, 0, tzinfo=UTC)  # 14:00 in São Paulo
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
DEMAND_TYPES = (*DEMAND_TYPE_LABELS, "some_future_type")
OUTCOMES = tuple(OUTCOME_LABELS)

FULL_BRANDING = Branding(
    operator_name="Saúde Boa Operadora de Planos de Saúde S.A.",
    display_name="Saúde Boa",
    ans_registry="123456",
    support_phone="0800 123 4567",
    ouvidoria_phone="0800 765 4321",
    ouvidoria_email="ouvidoria@saudeboa.com.br",
    website="www.saudeboa.com.br",
    records_url="https://saudeboa.com.br/meus-registros",
    logo_url="https://saudeboa.com.br/logo.png",
    primary_color="#7a1f5c",
)
MINIMAL_BRANDING = Branding(operator_name="Operadora Mínima Ltda", ans_registry="654321")
BRANDINGS = {"full": FULL_BRANDING, "minimal": MINIMAL_BRANDING}


def demand(
    demand_type: str = "assistance",
    due_at: datetime | None = None,
    *,
    immediate: bool = False,
    unit: str = "business_days",
    amount: int = 5,
) -> DemandInfo:
    return DemandInfo(
        demand_id=uuid.uuid4(),
        demand_type=demand_type,
        requested_at=OPENED,
        due_at=due_at or datetime(2025, 12, 1, 23, 59, 59, 999000, tzinfo=SP),
        immediate=immediate,
        deadline_unit=unit,  # type: ignore[arg-type]
        deadline_amount=amount,
    )


def demand_of_type(demand_type: str) -> DemandInfo:
    """A demand with the deadline its type has by default (DESIGN §2)."""
    if demand_type == "urgent_emergency":
        return demand(
            demand_type, OPENED + timedelta(hours=1), immediate=True, unit="hours", amount=1
        )
    if demand_type == "records_access":
        return demand(demand_type, OPENED + timedelta(hours=72), unit="hours", amount=72)
    return demand(demand_type)


def answer(
    outcome: str = "authorized",
    *,
    demand_type: str | None = "assistance",
    text: str = "Sua solicitação de consulta com cardiologista foi autorizada.",
    legal_basis: str | None = None,
    days: int | None = 7,
) -> AnswerInfo:
    denial = outcome in ("denied", "partially_authorized")
    return AnswerInfo(
        demand_id=uuid.uuid4(),
        demand_type=demand_type,
        outcome=outcome,  # type: ignore[arg-type]
        text=text,
        legal_basis=legal_basis
        if legal_basis is not None
        else ("Cláusula 12.3 do contrato; art. 12 da Lei 9.656/1998." if denial else None),
        answered_at=datetime(2025, 11, 26, 13, 5, tzinfo=UTC),
        reanalysis_allowed=denial,
        reanalysis_business_days=days if denial else None,
    )


def content(purpose: Purpose = "receipt", **changes: Any) -> MessageContent:
    values: dict[str, Any] = {
        "purpose": purpose,
        "protocol_number": PROTOCOL,
        "opened_at": OPENED,
        "contact_channel": "phone",
        "timezone": "America/Sao_Paulo",
        "beneficiary_name": "Maria Aparecida Souza",
        "branding": FULL_BRANDING,
        "demands": (demand(),),
    }
    if purpose == "answer":
        values["answer"] = answer()
    if purpose == "access_fulfilled":
        values["access"] = AccessInfo(
            request_id=uuid.uuid4(), fulfilled_at=datetime(2025, 11, 25, 12, 0, tzinfo=UTC)
        )
    values.update(changes)
    return MessageContent(**values)


def filled_whatsapp_body(message: RenderedMessage) -> str:
    body = WHATSAPP_TEMPLATE_BODIES[message.whatsapp_template.name]
    for index, value in enumerate(message.whatsapp_template.parameters, start=1):
        body = body.replace("{{" + str(index) + "}}", value)
    return body


def check_message(message: RenderedMessage, c: MessageContent) -> None:
    """What holds for every rendered message."""
    whatsapp = filled_whatsapp_body(message)
    parts = {
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "short_text": message.short_text,
        "whatsapp": whatsapp,
    }
    for name, part in parts.items():
        assert part.strip(), name
        for leftover in ("{{", "}}", "{%", "%}", "{#", "None", "Undefined"):
            assert leftover not in part, (name, leftover)
        assert c.protocol_number in part, name
    assert "\n" not in message.subject
    assert "\n" not in message.short_text
    assert len(message.short_text) <= SHORT_TEXT_MAX
    assert not re.search(
        r"<[a-zA-Z/!]", message.text.replace(c.answer.text, "") if c.answer else message.text
    )
    branding = c.branding
    operator = branding.display_name or branding.operator_name
    assert branding.ans_registry in message.text
    assert branding.ans_registry in message.html
    assert branding.ans_registry in message.short_text
    assert operator in message.text
    assert operator[:20] in message.short_text
    assert "623/2024" in message.text
    assert "623/2024" in message.html
    assert message.html.lstrip().startswith("<!DOCTYPE html>")
    assert message.html.rstrip().endswith("</html>")
    assert 'style="' in message.html
    assert "<link" not in message.html
    assert "<style" not in message.html
    assert branding.primary_color in message.html
    first = (c.beneficiary_name or "").split()[0:1]
    greeting = f"Olá, {first[0]}!" if first else "Olá!"
    assert message.text.startswith(greeting)
    assert greeting in message.html
    assert len(whatsapp) <= WHATSAPP_BODY_MAX
    template = message.whatsapp_template
    assert template.name == TEMPLATE_NAMES[c.purpose]
    assert template.language == "pt_BR"
    for value in template.parameters:
        assert value.strip()
        assert "\n" not in value
        assert "\t" not in value
        assert "     " not in value
        assert len(value) <= WHATSAPP_PARAMETER_MAX


# --- every template, every variant ---------------------------------------------------------------


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("branding", BRANDINGS)
@pytest.mark.parametrize("name", ["Maria Aparecida Souza", None, "  "])
@pytest.mark.parametrize("count", [0, 1, 4])
def test_every_template_renders(
    purpose: Purpose, branding: str, name: str | None, count: int
) -> None:
    demands = tuple(demand_of_type(t) for t in DEMAND_TYPES[:count])
    c = content(purpose, branding=BRANDINGS[branding], beneficiary_name=name, demands=demands)
    message = render(c)
    check_message(message, c)
    if name is None or not name.strip():
        assert "None" not in message.text
        assert message.whatsapp_template.parameters[0] == "beneficiário(a)"
    else:
        assert message.whatsapp_template.parameters[0] == "Maria"
    if branding == "full":
        assert 'src="https://saudeboa.com.br/logo.png"' in message.html
        assert len(message.short_text) <= SHORT_TEXT_TARGET
    else:
        assert "<img" not in message.html
        assert "#0b5394" in message.html  # the default colour
        assert "canais de atendimento" in message.text


@pytest.mark.parametrize("demand_type", DEMAND_TYPES)
def test_receipt_names_every_demand_type(demand_type: str) -> None:
    c = content(demands=(demand_of_type(demand_type),))
    message = render(c)
    check_message(message, c)
    label = DEMAND_TYPE_LABELS.get(demand_type, "solicitação")
    assert label[0].upper() + label[1:] in message.text
    assert label[0].upper() + label[1:] in message.html
    assert label in message.whatsapp_template.parameters[6]
    assert demand_type not in message.text


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("demand_type", DEMAND_TYPES)
def test_answer_renders_every_outcome_and_type(outcome: str, demand_type: str) -> None:
    c = content("answer", answer=answer(outcome, demand_type=demand_type))
    message = render(c)
    check_message(message, c)
    assert f"Resultado: {OUTCOME_LABELS[outcome]}" in message.text
    assert f"Solicitação: {DEMAND_TYPE_LABELS.get(demand_type, 'solicitação')}" in message.text
    assert OUTCOME_LABELS[outcome] in message.short_text
    assert "Data da resposta: 26/11/2025 às 10:05" in message.text


def test_receipt_contents() -> None:
    demands = (
        demand_of_type("assistance"),
        demand_of_type("urgent_emergency"),
        demand_of_type("records_access"),
    )
    message = render(content(demands=demands, contact_channel="whatsapp"))
    text = message.text
    assert f"Protocolo: {PROTOCOL}" in text
    assert "Data e hora do contato: 24/11/2025 às 14:00" in text
    assert "Canal do contato: WhatsApp" in text
    assert "- Cobertura assistencial: resposta até 01/12/2025 (prazo de 5 dias úteis)." in text
    assert "Urgência/emergência: caso urgente, com atendimento imediato" in text
    assert "- Cópia de registros: resposta até 27/11/2025 às 14:00 (prazo de 72 horas)." in text
    assert "www.saudeboa.com.br" in text
    assert "0800 123 4567" in text
    assert "0800 765 4321" in text
    assert "ouvidoria@saudeboa.com.br" in text
    assert "Resolução Normativa nº 623/2024 da ANS" in text
    assert 'href="https://www.saudeboa.com.br"' in message.html
    assert 'href="mailto:ouvidoria@saudeboa.com.br"' in message.html
    assert "Cobertura assistencial: resposta até 01/12/2025" in message.short_text
    assert "+2 solicitações" in message.short_text


def test_receipt_without_demands_reads_well() -> None:
    message = render(content(demands=(), branding=MINIMAL_BRANDING, beneficiary_name=None))
    assert "não foi registrada nenhuma solicitação" in message.text
    assert "prazo" not in message.text.lower()
    assert "Operadora Mínima Ltda" in message.text
    assert "ouvidoria da operadora, que pode ser acionada pelos seus canais" in message.text
    assert "pelos seus canais de atendimento, informando o protocolo" in message.text
    assert "não foi registrada solicitação" in message.whatsapp_template.parameters[6]


@pytest.mark.parametrize(
    ("channel", "label"),
    [
        ("phone", "telefone"),
        ("in_person", "presencial"),
        ("web", "site"),
        ("app", "aplicativo"),
        ("chat", "chat"),
        ("whatsapp", "WhatsApp"),
        ("email", "e-mail"),
        ("carrier_pigeon", "canal de atendimento da operadora"),
    ],
)
def test_contact_channel_in_portuguese(channel: str, label: str) -> None:
    message = render(content(contact_channel=channel))
    assert f"Canal do contato: {label}\n" in message.text
    assert message.whatsapp_template.parameters[5] == label


# --- dates in the operator's time zone ------------------------------------------------------------


def test_due_date_in_sao_paulo() -> None:
    due = datetime(2025, 11, 25, 2, 30, tzinfo=UTC)
    days = render(content(demands=(demand(due_at=due),)))
    assert "resposta até 24/11/2025 (prazo de 5 dias úteis)" in days.text
    assert "25/11/2025" not in days.text
    assert "resposta até 24/11/2025." in days.short_text
    hours = render(content(demands=(demand(due_at=due, unit="hours", amount=72),)))
    assert "resposta até 24/11/2025 às 23:30 (prazo de 72 horas)" in hours.text
    assert "resposta até 24/11/2025 às 23:30" in hours.short_text
    assert "24/11/2025 às 23:30" in hours.whatsapp_template.parameters[6]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("America/Sao_Paulo", "25/11/2025 às 00:30"),  # UTC-3
        ("America/Manaus", "24/11/2025 às 23:30"),  # UTC-4: still the day before
        ("America/Noronha", "25/11/2025 às 01:30"),  # UTC-2
        ("America/Rio_Branco", "24/11/2025 às 22:30"),  # UTC-5
    ],
)
def test_due_date_crosses_midnight_by_zone(zone: str, expected: str) -> None:
    due = datetime(2025, 11, 25, 3, 30, tzinfo=UTC)
    message = render(
        content(
            timezone=zone,
            opened_at=due,
            demands=(demand("records_access", due, unit="hours", amount=72),),
        )
    )
    assert f"resposta até {expected}" in message.text
    assert f"Data e hora do contato: {expected}" in message.text
    assert f"resposta até {expected}" in message.short_text


def test_noronha_is_already_tomorrow_when_sao_paulo_is_not() -> None:
    due = datetime(2025, 11, 25, 2, 30, tzinfo=UTC)
    sp = render(content(demands=(demand(due_at=due),)))
    noronha = render(content(timezone="America/Noronha", demands=(demand(due_at=due),)))
    assert "resposta até 24/11/2025" in sp.text
    assert "resposta até 25/11/2025" in noronha.text


def test_end_of_business_day_shows_that_day() -> None:
    due = datetime(2025, 12, 1, 23, 59, 59, 999000, tzinfo=SP)
    message = render(content(demands=(demand(due_at=due),)))
    assert "resposta até 01/12/2025 (prazo de 5 dias úteis)" in message.text
    assert "23:59" not in message.text


def test_immediate_demand_is_urgent() -> None:
    message = render(content(demands=(demand_of_type("urgent_emergency"),)))
    assert (
        "Urgência/emergência: caso urgente, com atendimento imediato "
        "(no máximo até 24/11/2025 às 15:00)." in message.text
    )
    assert "atendimento imediato" in message.short_text


def test_naive_opened_at_is_utc() -> None:
    message = render(content(opened_at=datetime(2025, 11, 25, 2, 30)))
    assert "Data e hora do contato: 24/11/2025 às 23:30" in message.text


def test_unknown_time_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="time zone"):
        render(content(timezone="Mars/Olympus_Mons"))


# --- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["denied", "partially_authorized"])
def test_denial_states_legal_basis_and_reanalysis_right(outcome: str) -> None:
    message = render(content("answer", answer=answer(outcome)))
    for part in (message.text, message.html):
        assert "Cláusula 12.3 do contrato; art. 12 da Lei 9.656/1998." in part
        assert "reanálise" in part
        assert "a ouvidoria tem até 7 dias úteis para responder" in part.lower()
        assert "0800 765 4321" in part
    assert "FUNDAMENTO CONTRATUAL OU LEGAL" in message.text
    assert "reanálise" in message.short_text
    closing = message.whatsapp_template.parameters[8]
    assert "Cláusula 12.3" in closing
    assert "reanálise" in closing
    assert "7 dias úteis" in closing


def test_reanalysis_deadline_unknown() -> None:
    message = render(content("answer", answer=answer("denied", days=None)))
    assert "reanálise" in message.text
    assert "dias úteis" not in message.text
    assert "A ouvidoria responde no prazo definido pela ANS." in message.text
    assert "A ouvidoria responde no prazo definido pela ANS." in message.html


def test_one_business_day_is_singular() -> None:
    message = render(content("answer", answer=answer("denied", days=1)))
    assert "tem até 1 dia útil para responder" in message.text


@pytest.mark.parametrize("outcome", ["authorized", "informed", "resolved"])
def test_authorization_does_not_mention_reanalysis(outcome: str) -> None:
    message = render(content("answer", answer=answer(outcome)))
    everything = " ".join(
        [message.text, message.html, message.short_text, filled_whatsapp_body(message)]
    ).lower()
    assert "reanálise" not in everything
    assert "fundamento" not in everything


def test_answer_text_kept_exactly_in_text_and_escaped_in_html() -> None:
    text = 'Prezada,\n\nsegue a resposta: <script>alert("x")</script> & "aspas"\nLinha 3'
    message = render(content("answer", answer=answer("informed", text=text)))
    assert text in message.text
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;aspas&#34;" in message.html
    assert "Prezada,<br>\n<br>\nsegue a resposta" in message.html
    assert "Linha 3" in message.html
    assert "<script>" in message.whatsapp_template.parameters[7]  # plain text, not HTML


def test_text_part_has_no_html_tags() -> None:
    for purpose in PURPOSES:
        message = render(content(purpose))
        assert not re.search(r"<[a-zA-Z/!][^>]*>", message.text), purpose
        assert "&lt;" not in message.text
        assert "&amp;" not in message.text


def test_html_escapes_branding_and_names() -> None:
    branding = FULL_BRANDING.model_copy(
        update={
            "display_name": "<b>Evil</b> & Co",
            "website": "javascript:alert(1)",
            "logo_url": "javascript:alert(1)",
            "primary_color": 'red;background:url("x")',
        }
    )
    message = render(content(branding=branding, beneficiary_name="<img src=x>"))
    assert "<b>Evil</b>" not in message.html
    assert "A operadora <b>Evil</b> & Co registrou" in message.text  # plain text is never escaped
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in message.html
    assert "<img src=x>" not in message.html
    assert 'href="javascript' not in message.html
    assert 'src="javascript' not in message.html
    assert "#0b5394" in message.html
    assert "red;background" not in message.html


def test_operator_named_operadora_is_not_repeated() -> None:
    message = render(content(branding=MINIMAL_BRANDING))
    assert "A Operadora Mínima Ltda registrou o seu atendimento" in message.text
    assert "operadora Operadora" not in message.text
    assert "A operadora Saúde Boa registrou" in render(content()).text


def test_answer_needs_its_answer() -> None:
    with pytest.raises(ValueError, match="answer"):
        render(content("answer", answer=None))
    with pytest.raises(ValueError, match="access"):
        render(content("access_fulfilled", access=None))


def test_answer_type_found_from_the_demands() -> None:
    d = demand("high_complexity")
    a = answer("authorized", demand_type=None).model_copy(update={"demand_id": d.demand_id})
    message = render(content("answer", demands=(d,), answer=a))
    assert "Solicitação: procedimento de alta complexidade" in message.text


# --- access to records ---------------------------------------------------------------------------


def test_access_fulfilled_with_records_url() -> None:
    c = content("access_fulfilled")
    message = render(c)
    assert c.access is not None
    assert str(c.access.request_id) in message.text
    assert "Disponível desde: 25/11/2025 às 09:00" in message.text
    assert "https://saudeboa.com.br/meus-registros" in message.text
    assert 'href="https://saudeboa.com.br/meus-registros"' in message.html
    assert "https://saudeboa.com.br/meus-registros" in message.short_text
    assert "gratuito" in message.text


def test_access_fulfilled_without_records_url() -> None:
    branding = FULL_BRANDING.model_copy(update={"records_url": None})
    message = render(content("access_fulfilled", branding=branding))
    assert "Para receber a cópia, acesse www.saudeboa.com.br ou ligue para 0800 123 4567" in (
        message.text
    )
    assert f"informando o protocolo {PROTOCOL}" in message.text
    assert "Solicite em www.saudeboa.com.br" in message.short_text


# --- short text and WhatsApp parameters -----------------------------------------------------------

LONG_NAME = ("Operadora de Planos de Assistência à Saúde dos Servidores Públicos " * 4)[:200]


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("long_display", [True, False])
def test_short_text_bounds_with_long_names_and_many_demands(
    purpose: Purpose, long_display: bool
) -> None:
    branding = FULL_BRANDING.model_copy(
        update={
            "operator_name": LONG_NAME,
            "display_name": LONG_NAME if long_display else None,
            "website": "https://www." + "muito-longo-" * 12 + ".com.br/acompanhe/protocolos",
            "records_url": "https://registros.example.com.br/" + "x" * 150,
            "support_phone": "0800 123 4567 (dias úteis, das 8h às 20h; urgência 24 horas)",
            "ouvidoria_phone": "0800 765 4321 (dias úteis, das 8h às 18h)",
        }
    )
    demands = tuple(demand_of_type(DEMAND_TYPES[i % len(DEMAND_TYPES)]) for i in range(10))
    long_answer = "Texto da resposta,\n   com    espaços\te quebras.\n" * 200
    c = content(
        purpose,
        branding=branding,
        demands=demands,
        beneficiary_name="Maria" * 40 + " Souza",
        answer=answer("denied", text=long_answer, legal_basis="Cláusula 7 " * 100),
    )
    message = render(c)
    check_message(message, c)
    assert PROTOCOL in message.short_text
    assert len(message.short_text) <= SHORT_TEXT_MAX
    assert "…" in message.short_text or len(message.short_text) <= SHORT_TEXT_TARGET
    assert long_answer not in message.short_text
    for value in message.whatsapp_template.parameters:
        assert len(value) <= WHATSAPP_PARAMETER_MAX
        assert "\n" not in value
        assert "    " not in value
    if purpose == "answer":
        assert long_answer in message.text  # the e-mail has it all


def test_short_answer_text_fits_the_sms() -> None:
    short = "Consulta autorizada para 02/12."
    message = render(
        content("answer", answer=answer("authorized", text=short), beneficiary_name=None)
    )
    assert short in message.short_text
    assert "Leia a resposta completa" not in message.short_text


def test_long_answer_text_points_to_email() -> None:
    long_text = "A sua solicitação foi analisada pela equipe médica. " * 20
    message = render(content("answer", answer=answer("authorized", text=long_text)))
    assert "Leia a resposta completa no e-mail ou em www.saudeboa.com.br" in message.short_text
    assert len(message.short_text) <= SHORT_TEXT_TARGET
    text_parameter = message.whatsapp_template.parameters[7]
    assert "Leia a resposta completa no e-mail" in text_parameter


def test_huge_protocol_number_is_never_cut() -> None:
    protocol = "9" * 30
    c = content(
        protocol_number=protocol,
        branding=FULL_BRANDING.model_copy(update={"display_name": LONG_NAME}),
        demands=tuple(demand_of_type(t) for t in DEMAND_TYPES),
    )
    message = render(c)
    assert protocol in message.short_text
    assert len(message.short_text) <= SHORT_TEXT_MAX


# --- WhatsApp template bodies ---------------------------------------------------------------------


def test_whatsapp_bodies_match_the_template_names() -> None:
    assert set(TEMPLATE_NAMES) == set(PURPOSES)
    assert set(WHATSAPP_TEMPLATE_BODIES) == set(TEMPLATE_NAMES.values())
    for body in WHATSAPP_TEMPLATE_BODIES.values():
        numbers = [int(n) for n in re.findall(r"\{\{(\d+)\}\}", body)]
        assert numbers == list(range(1, len(numbers) + 1))  # in order, each once
        assert not body.startswith("{{")
        assert not body.rstrip().endswith("}}")  # Meta rejects a variable at either end
        assert not re.search(r"\}\}\s*\{\{", body)  # nor two variables side by side
        assert len(body) <= 1024


@pytest.mark.parametrize("purpose", PURPOSES)
def test_whatsapp_parameters_fill_the_body(purpose: Purpose) -> None:
    message = render(content(purpose))
    body = WHATSAPP_TEMPLATE_BODIES[message.whatsapp_template.name]
    assert len(message.whatsapp_template.parameters) == len(re.findall(r"\{\{\d+\}\}", body))
    filled = filled_whatsapp_body(message)
    assert not re.search(r"\{\{\d+\}\}", filled)
    assert filled.startswith("Olá, Maria!")
    assert "Saúde Boa" in filled
    assert "123456" in filled


# --- packaging ------------------------------------------------------------------------------------


def test_templates_ship_inside_the_package() -> None:
    folder = resources.files("notification_svc") / "templates"
    names = {entry.name for entry in folder.iterdir()}
    for purpose in PURPOSES:
        for kind in ("subject.txt", "txt", "html", "sms.txt"):
            assert f"{purpose}.{kind}.j2" in names
    assert "_layout.html.j2" in names
