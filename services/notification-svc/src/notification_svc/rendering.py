"""Turn a message's content into the words sent: e-mail subject, text and HTML, SMS text and
the parameters of the pre-approved WhatsApp template.

Templates are Jinja2 files in ``notification_svc/templates`` (``<purpose>.subject.txt.j2``,
``<purpose>.txt.j2``, ``<purpose>.html.j2``, ``<purpose>.sms.txt.j2`` and a shared HTML
layout). Every date is shown in the operator's time zone (``content.timezone``) as
dd/mm/aaaa and 24-hour HH:MM; a naive datetime is taken as UTC. Rendering is pure: the same
content always gives the same words, so a retry or a fallback sends exactly what was first
rendered.

WhatsApp business-initiated messages must use a template registered beforehand with Meta
(directly or through Zenvia/Twilio). :data:`TEMPLATE_NAMES` gives each purpose's template
name and :data:`WHATSAPP_TEMPLATE_BODIES` the body text to register, language ``pt_BR``,
category ``UTILITY``; :func:`render` fills ``{{1}}``, ``{{2}}``... in that order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from markupsafe import Markup, escape

from notification_svc.content import AnswerInfo, Branding, DemandInfo, MessageContent, Purpose
from notification_svc.providers.base import WhatsAppTemplate

__all__ = [
    "CHANNEL_LABELS",
    "DEMAND_TYPE_LABELS",
    "OUTCOME_LABELS",
    "SHORT_TEXT_MAX",
    "SHORT_TEXT_TARGET",
    "TEMPLATE_NAMES",
    "WHATSAPP_BODY_MAX",
    "WHATSAPP_PARAMETER_MAX",
    "WHATSAPP_TEMPLATE_BODIES",
    "RenderedMessage",
    "channel_label",
    "demand_type_label",
    "due_phrase",
    "format_date",
    "format_datetime",
    "format_time",
    "outcome_label",
    "render",
]

SHORT_TEXT_TARGET: Final = 320
"""Length an SMS/WhatsApp text aims at (a few SMS segments)."""
SHORT_TEXT_MAX: Final = 480
"""Length an SMS/WhatsApp text never exceeds, whatever the names and demands."""
WHATSAPP_PARAMETER_MAX: Final = 1024
"""Longest value Meta accepts for one template body parameter."""
WHATSAPP_BODY_MAX: Final = 1024
"""Longest template body once its parameters are filled in (longer ones are rejected)."""

TEMPLATE_NAMES: Final[Mapping[Purpose, str]] = MappingProxyType(
    {
        "receipt": "rn623_recibo_protocolo",
        "answer": "rn623_resposta_demanda",
        "access_fulfilled": "rn623_copia_registros",
    }
)
"""WhatsApp template name of each purpose (register them as language ``pt_BR``)."""

WHATSAPP_TEMPLATE_BODIES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # {{1}} first name (or "beneficiário(a)"), {{2}} operator, {{3}} ANS registration,
        # {{4}} protocol number, {{5}} date and time of the contact, {{6}} contact channel,
        # {{7}} demands and their response due dates (or that there is none),
        # {{8}} how to follow up, {{9}} how to reach the ouvidoria.
        "rn623_recibo_protocolo": (
            "Olá, {{1}}! A operadora {{2}} (registro ANS nº {{3}}) registrou o seu "
            "atendimento com o protocolo {{4}}, em {{5}}, pelo canal {{6}}.\n\n"
            "{{7}}\n\n"
            "Para acompanhar, {{8}}, informando o número do protocolo.\n"
            "Ouvidoria: {{9}}.\n\n"
            "Recibo emitido conforme a Resolução Normativa nº 623/2024 da ANS."
        ),
        # {{1}} first name, {{2}} operator, {{3}} ANS registration, {{4}} protocol number,
        # {{5}} demand type, {{6}} outcome, {{7}} date and time of the answer,
        # {{8}} the answer (whitespace collapsed; when long, cut with where to read it all),
        # {{9}} (after "Importante:") for a denial or partial authorization the legal basis
        # and the right to a re-analysis by the ouvidoria with its deadline, otherwise how to
        # follow up.
        "rn623_resposta_demanda": (
            "Olá, {{1}}! A operadora {{2}} (registro ANS nº {{3}}) respondeu à sua "
            "solicitação do protocolo {{4}}.\n\n"
            "Solicitação: {{5}}\n"
            "Resultado: {{6}}\n"
            "Data da resposta: {{7}}\n"
            "Resposta: {{8}}\n\n"
            "Importante: {{9}}\n\n"
            "Mensagem enviada conforme a Resolução Normativa nº 623/2024 da ANS."
        ),
        # {{1}} first name, {{2}} operator, {{3}} ANS registration, {{4}} protocol number,
        # {{5}} request id, {{6}} date and time the copy was ready, {{7}} how to get it.
        "rn623_copia_registros": (
            "Olá, {{1}}! A cópia dos registros que você pediu à operadora {{2}} "
            "(registro ANS nº {{3}}) está pronta.\n\n"
            "Protocolo: {{4}}\n"
            "Número da solicitação: {{5}}\n"
            "Disponível desde: {{6}}\n"
            "Como obter: {{7}}.\n\n"
            "O acesso aos seus registros é gratuito, conforme a Resolução Normativa "
            "nº 623/2024 da ANS."
        ),
    }
)
"""Body text of each WhatsApp template, as registered with Meta, Zenvia or Twilio."""

DEMAND_TYPE_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "urgent_emergency": "urgência/emergência",
        "assistance": "cobertura assistencial",
        "high_complexity": "procedimento de alta complexidade",
        "elective_hospitalization": "internação eletiva",
        "non_assistance": "demanda não assistencial",
        "reanalysis": "reanálise",
        "records_access": "cópia de registros",
    }
)
"""Each demand type in Portuguese."""
_DEMAND_TYPE_FALLBACK: Final = "solicitação"

CHANNEL_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "phone": "telefone",
        "in_person": "presencial",
        "web": "site",
        "app": "aplicativo",
        "chat": "chat",
        "whatsapp": "WhatsApp",
        "email": "e-mail",
    }
)
"""Each contact channel in Portuguese."""
_CHANNEL_FALLBACK: Final = "canal de atendimento da operadora"

OUTCOME_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "authorized": "autorizada",
        "partially_authorized": "parcialmente autorizada",
        "denied": "negada",
        "informed": "informação prestada",
        "resolved": "resolvida",
    }
)
"""Each answer outcome in Portuguese."""

_REANALYSIS_OUTCOMES: Final = frozenset({"denied", "partially_authorized"})
_NAME_FALLBACK: Final = "beneficiário(a)"
_SERVICE_CHANNELS: Final = "pelos canais de atendimento da operadora"
_DEFAULT_COLOR: Final = "#0b5394"
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?:[/?#][^\s\"'<>]*)?")
_PLACEHOLDER = re.compile(r"\{\{\d+\}\}")
_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[^@\s\"'<>]+")


class RenderedMessage:
    """The words of one message, for every channel. Each part is rendered when first
    read: a WhatsApp or SMS send never pays for the e-mail's HTML."""

    def __init__(self, content: MessageContent) -> None:
        self._content = content
        self._ctx = _context(content)

    def _template(self, kind: str) -> str:
        name = f"{self._content.purpose}.{kind}.j2"
        return _ENV.get_template(name).render(self._ctx).strip() + "\n"

    @cached_property
    def subject(self) -> str:
        """The e-mail subject (one line)."""
        return _one_line(self._template("subject.txt"))

    @cached_property
    def text(self) -> str:
        """The e-mail plain-text part (complete)."""
        return self._template("txt")

    @cached_property
    def html(self) -> str:
        """The e-mail HTML part (complete, inline CSS, branded)."""
        return self._template("html")

    @cached_property
    def short_text(self) -> str:
        """The SMS / WhatsApp session text (short)."""
        return _short_text(self._content.purpose, self._ctx)

    @cached_property
    def whatsapp_template(self) -> WhatsAppTemplate:
        """The pre-approved WhatsApp template and its parameters."""
        return WhatsAppTemplate(
            name=TEMPLATE_NAMES[self._content.purpose],
            parameters=_whatsapp_parameters(self._content, self._ctx),
        )


# --- small formatting helpers (also the templates' filters) ---------------------------------


def _local(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz)


def format_date(value: datetime, tz: tzinfo) -> str:
    """The date as dd/mm/aaaa in ``tz``."""
    return _local(value, tz).strftime("%d/%m/%Y")


def format_time(value: datetime, tz: tzinfo) -> str:
    """The time as 24-hour HH:MM in ``tz``."""
    return _local(value, tz).strftime("%H:%M")


def format_datetime(value: datetime, tz: tzinfo) -> str:
    """The date and time as "dd/mm/aaaa às HH:MM" in ``tz``."""
    return f"{format_date(value, tz)} às {format_time(value, tz)}"


def demand_type_label(demand_type: str | None) -> str:
    """A demand type in Portuguese (a neutral word for an unknown one)."""
    return DEMAND_TYPE_LABELS.get(demand_type or "", _DEMAND_TYPE_FALLBACK)


def channel_label(channel: str) -> str:
    """A contact channel in Portuguese (a neutral phrase for an unknown one)."""
    return CHANNEL_LABELS.get(channel, _CHANNEL_FALLBACK)


def outcome_label(outcome: str) -> str:
    """An answer outcome in Portuguese."""
    return OUTCOME_LABELS.get(outcome, outcome)


def _plural(amount: int, singular: str, plural: str) -> str:
    return f"{amount} {singular if amount == 1 else plural}"


def due_phrase(demand: DemandInfo, tz: tzinfo) -> str:
    """When the demand is answered, e.g. "resposta até 01/12/2025 (prazo de 5 dias úteis)"."""
    if demand.immediate:
        return (
            "caso urgente, com atendimento imediato "
            f"(no máximo até {format_datetime(demand.due_at, tz)})"
        )
    if demand.deadline_unit == "hours":
        phrase = f"resposta até {format_datetime(demand.due_at, tz)}"
        if demand.deadline_amount > 0:
            phrase += f" (prazo de {_plural(demand.deadline_amount, 'hora', 'horas')})"
        return phrase
    phrase = f"resposta até {format_date(demand.due_at, tz)}"
    if demand.deadline_amount > 0:
        days = _plural(demand.deadline_amount, "dia útil", "dias úteis")
        phrase += f" (prazo de {days})"
    return phrase


def _short_due(demand: DemandInfo, tz: tzinfo) -> str:
    if demand.immediate:
        return "atendimento imediato"
    if demand.deadline_unit == "hours":
        return f"resposta até {format_datetime(demand.due_at, tz)}"
    return f"resposta até {format_date(demand.due_at, tz)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _truncate(text: str, limit: int, keep: str = "") -> str:
    """``text`` on one line, cut politely at a word to at most ``limit`` characters; never
    cuts into ``keep`` (the protocol number)."""
    text = _one_line(text)
    if len(text) <= limit:
        return text
    if keep and keep in text:
        end = text.index(keep) + len(keep)
        if end > limit - 1:
            return text[:end].rstrip(" ,;:") + "…"
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-(") + "…"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _href(url: str | None) -> str | None:
    """A safe link for a URL (http/https only; a bare domain gets https://)."""
    if not url:
        return None
    url = url.strip()
    lowered = url.lower()
    if lowered.startswith(("https://", "http://")):
        return url if not re.search(r"[\s\"'<>]", url) else None
    if _DOMAIN.fullmatch(url):
        return "https://" + url
    return None


def _display_url(url: str) -> str:
    url = url.strip()
    for prefix in ("https://", "http://"):
        if url.lower().startswith(prefix):
            url = url[len(prefix) :]
    return url.rstrip("/") if url.count("/") == 1 and url.endswith("/") else url


def _mailto(address: str | None) -> str | None:
    if address and _EMAIL.fullmatch(address.strip()):
        return "mailto:" + address.strip()
    return None


def _color(value: str) -> str:
    return value if _COLOR.fullmatch(value) else _DEFAULT_COLOR


def _text_on(color: str) -> str:
    """White or dark text, whichever reads better on ``color``."""
    digits = color[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#1f1f1f" if luminance > 0.4 else "#ffffff"


def _first_name(name: str | None) -> str | None:
    if not name or not name.split():
        return None
    first = name.split()[0]
    if first.isupper() or first.islower():
        first = first.capitalize()
    return first


def _str(value: str | None) -> str | None:
    value = _one_line(value) if value else None
    return value or None


# --- template environment -------------------------------------------------------------------


@jinja2.pass_context
def _f_date(ctx: jinja2.runtime.Context, value: datetime) -> str:
    return format_date(value, ctx["tz"])


@jinja2.pass_context
def _f_time(ctx: jinja2.runtime.Context, value: datetime) -> str:
    return format_time(value, ctx["tz"])


@jinja2.pass_context
def _f_datetime(ctx: jinja2.runtime.Context, value: datetime) -> str:
    return format_datetime(value, ctx["tz"])


@jinja2.pass_context
def _f_due(ctx: jinja2.runtime.Context, demand: DemandInfo) -> str:
    return due_phrase(demand, ctx["tz"])


@jinja2.pass_context
def _f_short_due(ctx: jinja2.runtime.Context, demand: DemandInfo) -> str:
    return _short_due(demand, ctx["tz"])


def _f_nl2br(text: str) -> Markup:
    """Escaped text whose line breaks become ``<br>``."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


_ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("notification_svc", "templates"),
    autoescape=jinja2.select_autoescape(
        enabled_extensions=("html.j2",), disabled_extensions=(), default=False
    ),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_ENV.filters.update(
    {
        "data": _f_date,
        "hora": _f_time,
        "data_hora": _f_datetime,
        "prazo": _f_due,
        "prazo_curto": _f_short_due,
        "tipo_demanda": demand_type_label,
        "canal": channel_label,
        "resultado": outcome_label,
        "inicial": _upper_first,
        "nl2br": _f_nl2br,
        "uma_linha": _one_line,
        "cortar": _truncate,
    }
)


# --- context ----------------------------------------------------------------------------------


def _follow_up(b: Branding) -> dict[str, Any]:
    website = _str(b.website)
    phone = _str(b.support_phone)
    parts = []
    if website:
        parts.append(f"acesse {_display_url(website)}")
    if phone:
        parts.append(f"ligue para {phone}")
    return {
        "website": _display_url(website) if website else None,
        "website_href": _href(website),
        "phone": phone,
        # "acesse x.com.br ou ligue para 0800..." / "fale com a operadora ... pelos canais"
        "action": " ou ".join(parts) or "fale com a operadora pelos seus canais de atendimento",
    }


def _ouvidoria(b: Branding) -> dict[str, Any]:
    phone = _str(b.ouvidoria_phone)
    email = _str(b.ouvidoria_email)
    contacts = []
    if phone:
        contacts.append(f"telefone {phone}")
    if email:
        contacts.append(f"e-mail {email}")
    return {
        "phone": phone,
        "email": email,
        "email_href": _mailto(email),
        # "telefone 0800... ou e-mail ouvidoria@..." or "" when the operator gave none
        "contacts": " ou ".join(contacts),
    }


def _answer_demand_type(content: MessageContent, answer: AnswerInfo) -> str | None:
    if answer.demand_type:
        return answer.demand_type
    for demand in content.demands:
        if demand.demand_id == answer.demand_id:
            return demand.demand_type
    return None


def _reanalysis_sentence(days: int | None) -> str:
    if days is None:
        return "A ouvidoria responde no prazo definido pela ANS."
    return f"A ouvidoria tem até {_plural(days, 'dia útil', 'dias úteis')} para responder."


def _context(content: MessageContent) -> dict[str, Any]:
    b = content.branding
    operator = _str(b.display_name) or _str(b.operator_name) or b.ans_registry
    first_name = _first_name(content.beneficiary_name)
    color = _color(b.primary_color)
    answer = content.answer
    access = content.access
    if content.purpose == "answer" and answer is None:
        raise ValueError("an answer message needs content.answer")
    if content.purpose == "access_fulfilled" and access is None:
        raise ValueError("an access_fulfilled message needs content.access")
    reanalysis = answer is not None and (
        answer.outcome in _REANALYSIS_OUTCOMES or answer.reanalysis_allowed
    )
    records_url = _str(b.records_url)
    return {
        "c": content,
        "tz": _zone(content.timezone),
        "protocol": content.protocol_number,
        "operator": operator,
        # "A operadora Saúde Boa", but "A Operadora Mínima Ltda", not "A operadora Operadora..."
        "operator_ref": "" if operator.lower().startswith("operadora") else "operadora ",
        "operator_legal_name": _str(b.operator_name) or operator,
        "ans": b.ans_registry,
        "first_name": first_name,
        "greeting": f"Olá, {first_name}" if first_name else "Olá",
        "channel": channel_label(content.contact_channel),
        "demands": content.demands,
        "follow": _follow_up(b),
        "ouvidoria": _ouvidoria(b),
        "answer": answer,
        "answer_type": (
            demand_type_label(_answer_demand_type(content, answer)) if answer else None
        ),
        "legal_basis": ((answer.legal_basis or "").strip() or None) if answer else None,
        "reanalysis": reanalysis,
        "reanalysis_sentence": _reanalysis_sentence(
            answer.reanalysis_business_days if answer else None
        ),
        "access": access,
        "records_url": _display_url(records_url) if records_url else None,
        "records_href": _href(records_url),
        "color": color,
        "on_color": _text_on(color),
        "logo_src": _href(b.logo_url) if b.logo_url and "://" in b.logo_url else None,
    }


# --- short text (SMS / WhatsApp session message) ---------------------------------------------


def _short_phone(phone: str) -> str:
    """The number only, without notes such as "(dias úteis, das 8h às 20h)"."""
    number = re.split(r"[(;,]", phone, maxsplit=1)[0].strip()
    return _truncate(number or phone, 30)


def _sms_values(ctx: Mapping[str, Any], level: int) -> dict[str, Any]:
    """What the SMS says at a level of detail: 2 full, 1 shorter, 0 the bare essentials."""
    follow = ctx["follow"]
    website, phone = follow["website"], follow["phone"]
    website_limit = (80, 60, 40)[2 - level]
    if website and len(website) > website_limit:
        website = None
    if level == 0 and phone:
        website = None
    places = []
    if website:
        places.append(f"em {website}")
    if phone:
        places.append(f"pelo telefone {_short_phone(phone)}")
    answer: AnswerInfo | None = ctx["answer"]
    answer_text = _one_line(answer.text) if answer else ""
    legal_basis = _one_line(ctx["legal_basis"] or "").rstrip(".")
    records_url = ctx["records_href"] or ctx["records_url"]
    if records_url and len(records_url) > (120, 80, 50)[2 - level]:
        records_url = None
    ouvidoria_phone = ctx["ouvidoria"]["phone"]
    return {
        "operator": _truncate(ctx["operator"], (60, 40, 25)[2 - level]),
        "greeting": _truncate(ctx["greeting"], 30) if level == 2 else None,
        "records_url": records_url,
        "follow": " ou ".join(places) or _SERVICE_CHANNELS,
        "read_at": f"no e-mail ou {places[0]}" if places else f"no e-mail ou {_SERVICE_CHANNELS}",
        "answer_text": answer_text if level == 2 and len(answer_text) <= 200 else None,
        "legal_basis": legal_basis if level == 2 and len(legal_basis) <= 120 else None,
        "ouvidoria_phone": _short_phone(ouvidoria_phone) if ouvidoria_phone and level else None,
    }


def _short_text(purpose: Purpose, ctx: Mapping[str, Any]) -> str:
    template = _ENV.get_template(f"{purpose}.sms.txt.j2")
    text = ""
    for level in (2, 1, 0):
        text = _one_line(template.render(ctx, sms=_sms_values(ctx, level), detail=level))
        if len(text) <= SHORT_TEXT_TARGET:
            return text
    return _truncate(text, SHORT_TEXT_MAX, keep=ctx["protocol"])


# --- WhatsApp template parameters ------------------------------------------------------------


def _parameter(value: str, limit: int = WHATSAPP_PARAMETER_MAX) -> str:
    """A template parameter: one line, no runs of spaces, never empty, within ``limit``."""
    return _truncate(value, min(limit, WHATSAPP_PARAMETER_MAX)) or "-"


def _joined(items: Sequence[str], limit: int) -> str:
    """``items`` joined by "; " within ``limit``, then how many solicitations were left out."""
    for count in range(len(items), 0, -1):
        rest = len(items) - count
        text = "; ".join(items[:count])
        if rest:
            more = "mais 1 solicitação" if rest == 1 else f"mais {rest} solicitações"
            text += f"; e {more} (veja os prazos no e-mail ou com a operadora)"
        if len(text) <= limit or count == 1:
            return text
    return ""


Elastic = Callable[[int], str]
"""A parameter that can say less: given a length, its value within that length."""


def _fit(body: str, values: Sequence[str | Elastic]) -> tuple[str, ...]:
    """The parameters, the elastic ones shortened so the filled body stays within
    :data:`WHATSAPP_BODY_MAX` (short ones first get all they need, the rest share)."""
    fixed = {i: _parameter(v, 200) for i, v in enumerate(values) if isinstance(v, str)}
    elastic = {i: v for i, v in enumerate(values) if not isinstance(v, str)}
    budget = (
        WHATSAPP_BODY_MAX
        - len(_PLACEHOLDER.sub("", body))
        - sum(len(value) for value in fixed.values())
    )
    natural = {i: _parameter(make(WHATSAPP_PARAMETER_MAX)) for i, make in elastic.items()}
    result = dict(fixed)
    order = sorted(elastic, key=lambda i: len(natural[i]))
    for position, index in enumerate(order):
        share = max(budget // (len(order) - position), 40)
        if len(natural[index]) <= share:
            result[index] = natural[index]
        else:
            result[index] = _parameter(elastic[index](share), share)
        budget -= len(result[index])
    return tuple(result[i] for i in range(len(values)))


def _whatsapp_parameters(content: MessageContent, ctx: Mapping[str, Any]) -> tuple[str, ...]:
    tz: tzinfo = ctx["tz"]
    name = TEMPLATE_NAMES[content.purpose]
    head = [
        _parameter(ctx["first_name"] or _NAME_FALLBACK, 30),
        _parameter(ctx["operator"], 80),
        ctx["ans"],
        content.protocol_number,
    ]
    follow = ctx["follow"]["action"]
    values: list[str | Elastic]
    if content.purpose == "receipt":
        items = [
            f"{demand_type_label(d.demand_type)}, {due_phrase(d, tz)}" for d in content.demands
        ]
        title = "Solicitação registrada" if len(items) == 1 else "Solicitações registradas"

        def summary(limit: int) -> str:
            if not items:
                return "Neste contato não foi registrada solicitação com prazo de resposta."
            return f"{title}: {_joined(items, limit - len(title) - 3)}."

        ouvidoria = ctx["ouvidoria"]["contacts"] or (
            "disponível pelos canais de atendimento da operadora"
        )
        values = [
            *head,
            format_datetime(content.opened_at, tz),
            ctx["channel"],
            summary,
            lambda limit: _truncate(follow, limit),
            lambda limit: _truncate(ouvidoria, limit),
        ]
    elif content.purpose == "answer":
        answer = ctx["answer"]
        assert isinstance(answer, AnswerInfo)
        text = _one_line(answer.text)
        read_at = ctx["follow"]["website"] or "pelos canais de atendimento da operadora"
        if ctx["follow"]["website"]:
            read_at = f"em {read_at}"
        pointer = f" Leia a resposta completa no e-mail ou {read_at}."

        def excerpt(limit: int) -> str:
            if len(text) <= limit:
                return text
            return _truncate(text, max(limit - len(pointer), 20)) + pointer

        if ctx["reanalysis"]:
            contacts = ctx["ouvidoria"]["contacts"]
            right: str = (
                " tem direito de pedir a reanálise desta decisão pela ouvidoria da operadora"
                + (f" ({contacts})" if contacts else "")
                + ", informando o protocolo. "
                + str(ctx["reanalysis_sentence"])
            )
            lead = "fundamento contratual ou legal da decisão: "
            basis = _one_line(ctx["legal_basis"] or "").rstrip(".")

            def closing(limit: int) -> str:
                if not basis:
                    return "você" + right
                room = max(limit - len(lead) - len(". Você") - len(right), 40)
                cut = _truncate(basis, room).rstrip(".")
                return f"{lead}{cut}{' ' if cut.endswith('…') else '. '}Você{right}"
        else:

            def closing(limit: int) -> str:
                return _truncate(f"em caso de dúvida, {follow}, informando o protocolo.", limit)

        values = [
            *head,
            ctx["answer_type"],
            outcome_label(answer.outcome),
            format_datetime(answer.answered_at, tz),
            excerpt,
            closing,
        ]
    else:
        access = content.access
        assert access is not None
        records = ctx["records_href"] or ctx["records_url"]
        how = (
            f"acesse {records}"
            if records
            else f"{follow}, informando o protocolo {content.protocol_number}"
        )
        values = [
            *head,
            str(access.request_id),
            format_datetime(access.fulfilled_at, tz),
            lambda limit: _truncate(how, limit),
        ]
    return _fit(WHATSAPP_TEMPLATE_BODIES[name], values)


# --- entry point ------------------------------------------------------------------------------


def render(content: MessageContent) -> RenderedMessage:
    """Every channel's words for a message's content (each part rendered on first read)."""
    return RenderedMessage(content)
