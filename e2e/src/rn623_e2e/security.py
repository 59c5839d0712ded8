"""Security checks of a running platform: bearer-token rejection on every operation, tenant
isolation between two operators, schemathesis fuzzing (see ``fuzzing``) and a scan of the
services' logs for personal data.

Findings never quote tokens, response bodies or personal data: a failure names the
service, the operation (its path template) and what went wrong.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx

from rn623_e2e import fuzzing
from rn623_events.auth import mint_token
from rn623_events.settings import AuthSettings

SERVICES = ("protocol-svc", "deadline-svc", "notification-svc", "retention-svc", "igr-svc")
PROBLEM_JSON = "application/problem+json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
REQUEST_TIMEOUT = 15.0
CONCURRENCY = 8  # requests in flight at once: enough to be quick, little enough for 2 cores
POLL_TIMEOUT = 60.0  # how long other services may take to learn what protocol-svc did
POLL_INTERVAL = 0.5
FUZZ_PARALLEL = 2  # schemathesis runs at once (one per service)

# Unauthenticated by design: providers sign their callbacks, they cannot send a bearer token.
UNAUTHENTICATED = frozenset(
    {
        ("notification-svc", "POST", "/v1/webhooks/{provider}"),
        ("notification-svc", "GET", "/v1/webhooks/meta"),
    }
)

# The scope each operation requires, as services/*/src/*/api.py declare it (``admin``
# grants every scope). The check also compares it with the scope the service names in its
# 403 challenge, so a drift between the two is reported.
REQUIRED_SCOPES: Mapping[tuple[str, str, str], str] = {
    ("protocol-svc", "PUT", "/v1/operators/{ans_registry}"): "admin",
    ("protocol-svc", "GET", "/v1/operators/{ans_registry}"): "protocols:read",
    ("protocol-svc", "POST", "/v1/protocols"): "protocols:write",
    ("protocol-svc", "GET", "/v1/protocols"): "protocols:read",
    ("protocol-svc", "GET", "/v1/protocols/{number}"): "protocols:read",
    ("protocol-svc", "POST", "/v1/protocols/{number}/demands"): "protocols:write",
    ("protocol-svc", "POST", "/v1/protocols/{number}/demands/{demand_id}/answer"): (
        "protocols:write"
    ),
    ("protocol-svc", "POST", "/v1/protocols/{number}/demands/{demand_id}/reanalysis"): (
        "protocols:write"
    ),
    ("protocol-svc", "POST", "/v1/protocols/{number}/interactions"): "protocols:write",
    ("protocol-svc", "POST", "/v1/complaints"): "protocols:write",
    ("deadline-svc", "GET", "/v1/deadlines"): "deadlines:read",
    ("deadline-svc", "GET", "/v1/deadlines/{deadline_id}"): "deadlines:read",
    ("deadline-svc", "GET", "/v1/calendar/add-business-days"): "deadlines:read",
    ("deadline-svc", "GET", "/v1/rules"): "deadlines:read",
    ("deadline-svc", "POST", "/v1/operators/{ans_registry}/recompute"): "admin",
    ("notification-svc", "GET", "/v1/notifications"): "notifications:read",
    ("notification-svc", "GET", "/v1/notifications/{notification_id}"): "notifications:read",
    ("notification-svc", "PUT", "/v1/operators/{ans_registry}/notification-profile"): "admin",
    ("notification-svc", "GET", "/v1/operators/{ans_registry}/notification-profile"): (
        "notifications:read"
    ),
    ("retention-svc", "GET", "/v1/retention"): "retention:read",
    ("retention-svc", "POST", "/v1/legal-holds"): "retention:write",
    ("retention-svc", "GET", "/v1/legal-holds"): "retention:read",
    ("retention-svc", "GET", "/v1/legal-holds/{hold_id}"): "retention:read",
    ("retention-svc", "DELETE", "/v1/legal-holds/{hold_id}"): "retention:write",
    ("retention-svc", "POST", "/v1/access-requests"): "retention:write",
    ("retention-svc", "GET", "/v1/access-requests"): "retention:read",
    ("retention-svc", "GET", "/v1/access-requests/{request_id}"): "retention:read",
    ("retention-svc", "GET", "/v1/access-requests/{request_id}/bundle"): "records:read",
    ("retention-svc", "GET", "/v1/disposal-certificates/verify"): "retention:read",
    ("retention-svc", "GET", "/v1/disposal-certificates"): "retention:read",
    ("retention-svc", "GET", "/v1/disposal-certificates/{certificate_id}"): "retention:read",
    ("retention-svc", "GET", "/v1/purges/preview"): "retention:read",
    ("retention-svc", "GET", "/v1/purges"): "retention:read",
    ("igr-svc", "PUT", "/v1/operators/{ans_registry}/beneficiaries/{month}"): "igr:write",
    ("igr-svc", "GET", "/v1/operators/{ans_registry}/beneficiaries"): "igr:read",
    ("igr-svc", "POST", "/v1/beneficiaries/import"): "igr:write",
    ("igr-svc", "PUT", "/v1/igr/{ans_registry}/individual/{quarter}"): "igr:write",
    ("igr-svc", "GET", "/v1/igr/ranking"): "igr:read",
    ("igr-svc", "GET", "/v1/igr/export"): "igr:read",
    ("igr-svc", "GET", "/v1/igr/{ans_registry}"): "igr:read",
    ("igr-svc", "GET", "/v1/igr/{ans_registry}/history"): "igr:read",
    ("igr-svc", "GET", "/v1/indicators/{ans_registry}"): "igr:read",
    ("igr-svc", "POST", "/v1/igr/quarters/{quarter}/close"): "admin",
}
ADMIN = "admin"
ALL_SCOPES = tuple(sorted(set(REQUIRED_SCOPES.values())))

# Path parameters by name; any other is filled from its schema (enum, uuid, pattern).
PLACEHOLDER_OPERATOR = "999999"
PLACEHOLDER_PROTOCOL = "99999920000103000001"  # ans-default-20: registry, date, sequence
PLACEHOLDER_QUARTER = "2000Q1"  # long past: holds no real data if a check ever got through


@dataclass
class SecurityFindings:
    """What a security check did and every problem it found."""

    requests_tried: int = 0  # total HTTP requests made by the check
    bad_inputs_tried: int = 0  # requests that deliberately carried bad tokens or input
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The findings as plain JSON-ready data."""
        return {
            "requests_tried": self.requests_tried,
            "bad_inputs_tried": self.bad_inputs_tried,
            "failures": list(self.failures),
        }

    def fail(self, message: str) -> None:
        """Record one problem (never with personal data or tokens in ``message``)."""
        self.failures.append(message)


# ---- tokens --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(
    secret: str,
    *,
    operators: Sequence[str] = ("*",),
    scopes: Sequence[str] = (ADMIN,),
    subject: str = "e2e-security",
    ttl: timedelta = timedelta(minutes=30),
    issuer: str | None = None,
    audience: str | None = None,
    now: datetime | None = None,
) -> str:
    """An HS256 token for the default issuer and audience unless others are given."""
    settings = AuthSettings()
    return mint_token(
        secret,
        subject=subject,
        operators=operators,
        scopes=scopes,
        ttl=ttl,
        issuer=settings.issuer if issuer is None else issuer,
        audience=settings.audience if audience is None else audience,
        now=now or datetime.now(UTC),
    )


def bearer(token: str) -> dict[str, str]:
    """Authorization headers carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def unsigned_token(token: str) -> str:
    """``token``'s claims under an ``alg: none`` header with no signature."""
    _, payload, _ = token.split(".")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{payload}."


def tampered_token(token: str) -> str:
    """``token`` with its claims widened to every operator and ``admin``, old signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims.update(operators=["*"], scope=ADMIN)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def bad_credentials(secret: str) -> dict[str, dict[str, str]]:
    """Authorization headers that every secured operation must answer with 401, by label."""
    now = datetime.now(UTC)
    valid = make_token(secret, now=now)
    settings = AuthSettings()
    return {
        "no token": {},
        "a Basic credential": {"Authorization": "Basic " + _b64(b"e2e:e2e")},
        "a bearer scheme without token": {"Authorization": "Bearer"},
        "a malformed token": bearer("not.a.jwt"),
        "an expired token": bearer(
            make_token(secret, now=now - timedelta(hours=2), ttl=timedelta(hours=1))
        ),
        "a token issued in the future": bearer(make_token(secret, now=now + timedelta(hours=1))),
        "a token signed with another secret": bearer(
            make_token(secrets.token_urlsafe(48), now=now)
        ),
        "a token with altered claims": bearer(tampered_token(valid)),
        "a token for another audience": bearer(
            make_token(secret, audience=f"not-{settings.audience}", now=now)
        ),
        "a token from another issuer": bearer(
            make_token(secret, issuer=f"not-{settings.issuer}", now=now)
        ),
        "an alg-none token": bearer(unsigned_token(valid)),
        "a token without subject": bearer(make_token(secret, subject="", now=now)),
    }


def other_scopes(required: str) -> tuple[str, ...]:
    """Every known scope that does not grant ``required`` (never ``admin``)."""
    return tuple(scope for scope in ALL_SCOPES if scope not in (required, ADMIN))


def challenged_scope(response: httpx.Response) -> str | None:
    """The scope a 403 ``insufficient_scope`` challenge names, if any."""
    match = re.search(r'scope="([^"]*)"', response.headers.get("www-authenticate", ""))
    return match.group(1) if match else None


# ---- operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of a service's OpenAPI document."""

    service: str
    method: str  # upper case
    path: str  # the template, e.g. /v1/protocols/{number}
    secured: bool
    parameters: tuple[Mapping[str, Any], ...] = ()
    body_media_type: str | None = None

    @property
    def label(self) -> str:
        """``service METHOD /path/{template}``, for messages."""
        return f"{self.service} {self.method} {self.path}"


def operations_of(service: str, document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document, with whether it declares security."""
    default_security = document.get("security")
    found = []
    for path, item in document.get("paths", {}).items():
        shared = tuple(item.get("parameters", ()))
        for method in HTTP_METHODS:
            spec = item.get(method)
            if spec is None:
                continue
            security = spec.get("security", default_security)
            content = (spec.get("requestBody") or {}).get("content") or {}
            found.append(
                Operation(
                    service=service,
                    method=method.upper(),
                    path=path,
                    secured=bool(security) and any(bool(s) for s in security),
                    parameters=shared + tuple(spec.get("parameters", ())),
                    body_media_type=next(iter(content), None),
                )
            )
    return found


def current_month(now: datetime | None = None) -> str:
    """The month (YYYY-MM) of ``now`` (default: today, UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def example_value(name: str, schema: Mapping[str, Any]) -> str:
    """A plausible value of a path parameter, by its name or else its schema."""
    by_name = {
        "ans_registry": PLACEHOLDER_OPERATOR,
        "number": PLACEHOLDER_PROTOCOL,
        "quarter": PLACEHOLDER_QUARTER,
        "month": current_month(),
    }
    if name in by_name:
        return by_name[name]
    schema = _first_alternative(schema)
    if schema.get("enum"):
        return str(schema["enum"][0])
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("type") == "integer":
        return str(max(1, int(schema.get("minimum", 1))))
    pattern = schema.get("pattern")
    if pattern:
        candidates = (*by_name.values(), "1", "a")
        for candidate in candidates:
            if re.search(pattern, candidate):
                return candidate
    return "1"


def _first_alternative(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The first non-null branch of an ``anyOf``/``oneOf`` schema (or the schema itself)."""
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, ()):
            if branch.get("type") != "null":
                return _first_alternative(branch)
    return schema


def fill_path(operation: Operation) -> str:
    """The operation's path with every path parameter filled with a plausible value."""
    path = operation.path
    for parameter in operation.parameters:
        if parameter.get("in") == "path":
            value = example_value(parameter["name"], parameter.get("schema", {}))
            path = path.replace("{" + parameter["name"] + "}", value)
    return path


def request_body(operation: Operation) -> dict[str, Any]:
    """Keyword arguments for httpx carrying a minimal well-formed body, if the operation
    takes one (so that only the credentials can be the reason for a refusal)."""
    media = operation.body_media_type
    if media is None:
        return {}
    if "json" in media:
        return {"json": {}}
    return {"content": b"", "headers": {"Content-Type": media}}


# ---- HTTP ----------------------------------------------------------------------------------


class _Http:
    """An HTTP client that counts requests and bad inputs into ``findings``."""

    def __init__(self, findings: SecurityFindings) -> None:
        self.findings = findings
        self.client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        self.limit = asyncio.Semaphore(CONCURRENCY)

    async def __aenter__(self) -> _Http:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def send(
        self,
        label: str,
        method: str,
        url: str,
        *,
        bad: bool = False,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send one request; a transport error becomes a finding and ``None``."""
        self.findings.requests_tried += 1
        self.findings.bad_inputs_tried += int(bad)
        try:
            async with self.limit:
                return await self.client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            self.findings.fail(f"{label}: request failed ({type(exc).__name__})")
            return None


def is_problem(response: httpx.Response) -> bool:
    """Whether the response is an RFC 9457 problem document."""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != PROBLEM_JSON:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == response.status_code


async def _openapi(http: _Http, service: str, url: str) -> dict[str, Any] | None:
    response = await http.send(f"{service} GET /openapi.json", "GET", f"{url}/openapi.json")
    if response is None:
        return None
    if response.status_code != 200:
        http.findings.fail(f"{service} GET /openapi.json: got {response.status_code}")
        return None
    document: dict[str, Any] = response.json()
    return document


# ---- 1. token rejection ----------------------------------------------------------------------


async def check_token_rejection(urls: Mapping[str, str], secret: str) -> SecurityFindings:
    """Every secured operation refuses bad tokens (401) and tokens without its scope (403),
    as problem+json; provider callbacks with a bad signature are refused too."""
    findings = SecurityFindings()
    async with _Http(findings) as http:
        credentials = bad_credentials(secret)
        checks: list[Awaitable[None]] = []
        for service, url in urls.items():
            document = await _openapi(http, service, url)
            if document is None:
                continue
            for operation in operations_of(service, document):
                key = (service, operation.method, operation.path)
                if key in UNAUTHENTICATED:
                    continue
                if not operation.secured:
                    findings.fail(f"{operation.label}: declares no security requirement")
                checks.append(_check_operation(http, url, operation, credentials, secret))
            if service == "notification-svc":
                checks.append(_check_webhooks(http, url, document))
        await asyncio.gather(*checks)
    return findings


async def _check_operation(
    http: _Http,
    url: str,
    operation: Operation,
    credentials: Mapping[str, Mapping[str, str]],
    secret: str,
) -> None:
    target = url + fill_path(operation)
    body = request_body(operation)

    async def attempt(headers: Mapping[str, str]) -> httpx.Response | None:
        extra = dict(body.get("headers", {}))
        kwargs = {k: v for k, v in body.items() if k != "headers"}
        return await http.send(
            operation.label,
            operation.method,
            target,
            bad=True,
            headers={**headers, **extra},
            **kwargs,
        )

    async def expect_401(what: str, headers: Mapping[str, str]) -> None:
        response = await attempt(headers)
        if response is None:
            return
        token = dict(headers).get("Authorization", "").removeprefix("Bearer ").strip()
        if response.status_code != 401:
            http.findings.fail(f"{operation.label}: {what} got {response.status_code}")
        elif not is_problem(response):
            http.findings.fail(f"{operation.label}: {what} got 401 without problem+json")
        elif "bearer" not in response.headers.get("www-authenticate", "").lower():
            http.findings.fail(f"{operation.label}: {what} got 401 without a Bearer challenge")
        if len(token) > 8 and token in response.text:
            http.findings.fail(f"{operation.label}: {what} was echoed in the answer")

    await asyncio.gather(*(expect_401(what, headers) for what, headers in credentials.items()))

    expected = REQUIRED_SCOPES.get((operation.service, operation.method, operation.path))
    no_scope = await attempt(bearer(make_token(secret, scopes=())))
    if no_scope is None:
        return
    if not _insufficient_scope(no_scope):
        http.findings.fail(
            f"{operation.label}: a token without scopes got {_status_text(no_scope)}"
        )
        return
    named = challenged_scope(no_scope)
    required = expected or named
    if expected is not None and named != expected:
        http.findings.fail(
            f"{operation.label}: requires scope {named!r}, the security check expects "
            f"{expected!r} (update REQUIRED_SCOPES or the service)"
        )
    if required is None:
        http.findings.fail(f"{operation.label}: a 403 that names no required scope")
        return
    wrong = other_scopes(required)
    response = await attempt(bearer(make_token(secret, scopes=wrong)))
    if response is not None and not _insufficient_scope(response):
        http.findings.fail(
            f"{operation.label}: a token with every scope but {required} got "
            f"{_status_text(response)}"
        )


def _insufficient_scope(response: httpx.Response) -> bool:
    if response.status_code != 403 or not is_problem(response):
        return False
    return str(response.json().get("type", "")).endswith(":insufficient-scope")


def _status_text(response: httpx.Response) -> str:
    if response.status_code >= 400 and not is_problem(response):
        return f"{response.status_code} (not problem+json)"
    if response.status_code == 403:
        return "403 for another reason than the scope"
    return str(response.status_code)


async def _check_webhooks(http: _Http, url: str, document: Mapping[str, Any]) -> None:
    """Provider callbacks with a forged signature get 401 (404: provider not configured),
    and Meta's subscription handshake with a wrong verify token gets 403."""
    operation = next(
        (
            op
            for op in operations_of("notification-svc", document)
            if (op.method, op.path) == ("POST", "/v1/webhooks/{provider}")
        ),
        None,
    )
    if operation is None:
        return
    provider = next(p for p in operation.parameters if p.get("name") == "provider")
    names = _first_alternative(provider.get("schema", {})).get("enum", [])
    forged = {
        "X-Twilio-Signature": _b64(secrets.token_bytes(20)),
        "X-Hub-Signature-256": "sha256=" + secrets.token_hex(32),
        "X-Zenvia-Webhook-Token": secrets.token_urlsafe(24),
        "Content-Type": "application/json",
    }
    label = "notification-svc POST /v1/webhooks/{provider}"
    configured = 0
    for name in names:
        response = await http.send(
            label, "POST", f"{url}/v1/webhooks/{name}", bad=True, headers=forged, content=b"{}"
        )
        if response is None or response.status_code == 404:
            continue
        configured += 1
        if response.status_code != 401 or not is_problem(response):
            http.findings.fail(f"{label} ({name}): a forged signature got {_status_text(response)}")
    if names and not configured:
        http.findings.fail(f"{label}: no provider is configured, signatures went unchecked")
    meta = "notification-svc GET /v1/webhooks/meta"
    response = await http.send(
        meta,
        "GET",
        f"{url}/v1/webhooks/meta",
        bad=True,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": secrets.token_urlsafe(16),
            "hub.challenge": "1158201444",
        },
    )
    if response is not None and (response.status_code != 403 or not is_problem(response)):
        http.findings.fail(f"{meta}: a wrong verify token got {_status_text(response)}")


# ---- 2. tenant isolation ---------------------------------------------------------------------


def valid_cpf(base: str) -> str:
    """The CPF whose first nine digits are ``base``, with its two check digits."""
    if len(base) != 9 or not base.isdigit():
        raise ValueError("a CPF base has nine digits")
    digits = base
    for length in (9, 10):
        total = sum(int(d) * w for d, w in zip(digits, range(length + 1, 1, -1), strict=False))
        digits += str(total * 10 % 11 % 10)
    return digits


def _random_digits(count: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


@dataclass
class Tenant:
    """An operator and the token it acts with."""

    operator: str
    headers: dict[str, str]


@dataclass
class TenantData:
    """Operator A's resources as the isolation check creates them."""

    operator: str
    beneficiary: dict[str, Any]
    idempotency_key: str = field(default_factory=lambda: f"e2e-{uuid.uuid4()}")
    contact_id: str = field(default_factory=lambda: f"e2e-contact-{uuid.uuid4()}")
    protocol: str | None = None
    demand: str | None = None
    reanalysis: str | None = None
    answer: str | None = None
    interaction: str | None = None
    complaint: str | None = None
    deadline: str | None = None
    notification: str | None = None
    hold: str | None = None
    access_request: str | None = None
    month: str | None = None
    quarter: str | None = None

    def markers(self) -> set[str]:
        """Values that only operator A's data holds: ids and the beneficiary's data."""
        ids = (
            self.protocol,
            self.demand,
            self.reanalysis,
            self.answer,
            self.interaction,
            self.complaint,
            self.deadline,
            self.notification,
            self.hold,
            self.access_request,
        )
        personal = (str(v) for k, v in self.beneficiary.items() if k != "preferred_channels")
        return {value for value in (*ids, *personal) if value}


def beneficiary_data() -> dict[str, Any]:
    """A synthetic beneficiary, unique to one run."""
    tag = secrets.token_hex(4)
    return {
        "card_number": "9" + _random_digits(14),
        "cpf": valid_cpf("9" + _random_digits(8)),
        "name": f"Beneficiaria Isolamento {tag}",
        "email": f"isolamento.{tag}@example.org",
        "preferred_channels": ["email"],
    }


def operator_body(operator: str) -> dict[str, Any]:
    """A registration for a test operator (São Paulo, medical)."""
    return {
        "name": f"Operadora de teste {operator}",
        "segment": "medical",
        "modality": "medicina_de_grupo",
        "beneficiaries": 12000,
        "uf": "SP",
        "municipality_ibge": "3550308",
        "timezone": "America/Sao_Paulo",
    }


def reveals(text: str, markers: Iterable[str], operator: str) -> bool:
    """Whether an answer shows operator A's data: one of its markers anywhere, or its
    registration as a whole JSON string value or CSV field."""
    lowered = text.lower()
    if any(marker.lower() in lowered for marker in markers if len(marker) >= 8):
        return True
    try:
        document = json.loads(text)
    except ValueError:
        if not operator:
            return False
        fields = re.split(r"[;,\r\n]", text)
        return any(value.strip().strip('"') == operator for value in fields)
    return bool(operator) and operator in _strings(document)


def _strings(document: object) -> set[str]:
    """Every string (values and keys) inside a JSON document."""
    found: set[str] = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            found.update(str(key) for key in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


Kind = Literal["read", "list", "write", "reference"]
Probe = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Attempt:
    """Something operator B tries against operator A's data, and what A gets for it.

    ``read``: B gets 403 or 404, A gets ``owner_statuses``.
    ``list``: B gets 403/404, or a 2xx that shows nothing of A; A's own answer must show
    A's data when ``owner_sees``.
    ``write``: B gets 403 or 404 (A does not repeat it).
    ``reference``: B names A's resource in its own request: 403, 404 or a 422 refusing it.
    """

    service: str
    method: str
    template: str
    path: str
    kind: Kind
    params: Mapping[str, str] | None = None
    body: object = None
    content: bytes | None = None
    content_type: str | None = None
    owner_statuses: frozenset[int] = frozenset({200})
    owner_sees: bool = False

    @property
    def label(self) -> str:
        """``service METHOD /path/{template}``, plus the query parameter names."""
        query = f"?{'&'.join(sorted(self.params))}" if self.params else ""
        return f"{self.service} {self.method} {self.template}{query}"

    def request_text(self) -> str:
        """Everything the request itself carries (what an answer may echo without leaking)."""
        parts = [self.path, json.dumps(self.params or {}), json.dumps(self.body)]
        if self.content is not None:
            parts.append(self.content.decode(errors="replace"))
        return " ".join(parts)


async def _call(
    http: _Http, urls: Mapping[str, str], attempt: Attempt, headers: Mapping[str, str], bad: bool
) -> httpx.Response | None:
    extra: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    if attempt.content is not None:
        kwargs["content"] = attempt.content
        extra["Content-Type"] = attempt.content_type or "application/octet-stream"
    elif attempt.body is not None:
        kwargs["json"] = attempt.body
    return await http.send(
        attempt.label,
        attempt.method,
        urls[attempt.service] + attempt.path,
        bad=bad,
        headers={**headers, **extra},
        params=attempt.params,
        **kwargs,
    )


async def check_tenant_isolation(
    urls: Mapping[str, str], secret: str, operator_a: str, operator_b: str
) -> SecurityFindings:
    """Operator B (every scope, only its own operator) can neither read, list, change nor
    delete anything of operator A, in every service; A still can."""
    findings = SecurityFindings()
    a = Tenant(operator_a, bearer(make_token(secret, operators=[operator_a], scopes=[ADMIN])))
    b = Tenant(operator_b, bearer(make_token(secret, operators=[operator_b], scopes=ALL_SCOPES)))
    data = TenantData(operator_a, beneficiary_data())
    async with _Http(findings) as http:
        await _create(http, urls, a, data)
        await _prepare_b(http, urls, b)
        await _await_propagation(http, urls, a, data)
        before = await _snapshot(http, urls, a, data)
        attempts = isolation_attempts(data, operator_b)
        markers = data.markers()
        await asyncio.gather(
            *(_try_as_b(http, urls, b, attempt, markers, operator_a) for attempt in attempts)
        )
        await _idempotency_isolation(http, urls, b, data)
        await asyncio.gather(
            *(
                _read_as_a(http, urls, a, attempt, markers, operator_a)
                for attempt in attempts
                if attempt.kind in ("read", "list")
            )
        )
        after = await _snapshot(http, urls, a, data)
        for name, value in before.items():
            if after.get(name) != value:
                findings.fail(f"operator A's {name} changed while operator B tried to change it")
    return findings


@dataclass
class _Setup:
    """Requests made as operator A while its resources are created."""

    http: _Http
    urls: Mapping[str, str]
    tenant: Tenant

    async def expect(
        self,
        service: str,
        operation: str,
        path: str,
        statuses: Iterable[int],
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """``operation`` (``METHOD /template``) on ``path``; the JSON answer when its status
        is one of ``statuses``, else a finding and None."""
        method, template = operation.split(" ", 1)
        label = f"{service} {method} {template}"
        response = await self.http.send(
            label,
            method,
            self.urls[service] + path,
            headers={**self.tenant.headers, **(headers or {})},
            **kwargs,
        )
        if response is None:
            return None
        if response.status_code not in set(statuses):
            self.http.findings.fail(f"setup: {label} as operator A got {response.status_code}")
            return None
        body: dict[str, Any] = response.json()
        return body


def _id(body: Mapping[str, Any] | None) -> str | None:
    return str(body["id"]) if body else None


async def _create(http: _Http, urls: Mapping[str, str], a: Tenant, data: TenantData) -> None:
    """One of every kind of resource of operator A."""
    ans = a.operator
    setup = _Setup(http, urls, a)
    p, n, r, i = "protocol-svc", "notification-svc", "retention-svc", "igr-svc"
    operator = f"/v1/operators/{ans}"
    await setup.expect(
        p, "PUT /v1/operators/{ans_registry}", operator, (200, 201), json=operator_body(ans)
    )
    opened = await setup.expect(
        p,
        "POST /v1/protocols",
        "/v1/protocols",
        (201,),
        headers={"Idempotency-Key": data.idempotency_key},
        json={
            "operator": ans,
            "channel": "phone",
            "contact_id": data.contact_id,
            "beneficiary": data.beneficiary,
            "demand": {
                "demand_type": "assistance",
                "description": "Pedido de autorizacao de exame (verificacao de isolamento)",
            },
        },
    )
    if opened is None:
        return
    data.protocol, data.demand = opened["protocol_number"], str(opened["demand"]["id"])
    on_demand = "POST /v1/protocols/{number}/demands/{demand_id}"
    demand = f"/v1/protocols/{data.protocol}/demands/{data.demand}"
    denial = {
        "outcome": "denied",
        "text": "O exame pedido foi negado porque o plano contratado nao cobre este "
        "procedimento ambulatorial.",
        "legal_basis": "Clausula 7.2 do contrato; Lei 9.656/1998, art. 10",
    }
    answer = await setup.expect(p, f"{on_demand}/answer", f"{demand}/answer", (201,), json=denial)
    data.answer = _id(answer)
    again = await setup.expect(
        p, f"{on_demand}/reanalysis", f"{demand}/reanalysis", (201,), json={}
    )
    data.reanalysis = _id(again)
    note = {"kind": "note", "author": "agent", "content": "Nota interna de verificacao."}
    interaction = await setup.expect(
        p,
        "POST /v1/protocols/{number}/interactions",
        f"/v1/protocols/{data.protocol}/interactions",
        (201,),
        json=note,
    )
    data.interaction = _id(interaction)
    about = {"operator": ans, "protocol_number": data.protocol}
    complaint = {**about, "source": "ouvidoria", "classification": "atendimento"}
    data.complaint = _id(
        await setup.expect(p, "POST /v1/complaints", "/v1/complaints", (201,), json=complaint)
    )
    profile = {"branding": {"display_name": f"Operadora {ans}"}}
    await setup.expect(
        n,
        "PUT /v1/operators/{ans_registry}/notification-profile",
        f"{operator}/notification-profile",
        (200,),
        json=profile,
    )
    hold = {**about, "scope": "protocol", "reason": "Verificacao de isolamento entre operadoras"}
    data.hold = _id(
        await setup.expect(r, "POST /v1/legal-holds", "/v1/legal-holds", (201,), json=hold)
    )
    access = {**about, "scope": "protocol"}
    data.access_request = _id(
        await setup.expect(
            r, "POST /v1/access-requests", "/v1/access-requests", (202,), json=access
        )
    )
    ranking = await setup.expect(i, "GET /v1/igr/ranking", "/v1/igr/ranking", (200,))
    if ranking is None:
        return
    # the service's quarter (its clock may be moved) and the quarter's first month
    data.quarter = str(ranking["quarter"])
    year, number = data.quarter.split("Q")
    data.month = f"{year}-{(int(number) - 1) * 3 + 1:02d}"
    await setup.expect(
        i,
        "PUT /v1/operators/{ans_registry}/beneficiaries/{month}",
        f"{operator}/beneficiaries/{data.month}",
        (200,),
        json={"medical": 12000},
    )
    await setup.expect(
        i,
        "PUT /v1/igr/{ans_registry}/individual/{quarter}",
        f"/v1/igr/{ans}/individual/{data.quarter}",
        (200,),
        json={"medical": "1.25"},
    )


async def _prepare_b(http: _Http, urls: Mapping[str, str], b: Tenant) -> None:
    """Operator B is registered too, so its refusals are about A, not about itself."""
    response = await http.send(
        "protocol-svc PUT /v1/operators/{ans_registry}",
        "PUT",
        f"{urls['protocol-svc']}/v1/operators/{b.operator}",
        headers=b.headers,
        json=operator_body(b.operator),
    )
    if response is not None and response.status_code not in (200, 201):
        http.findings.fail(f"setup: registering operator B got {response.status_code}")


async def _poll(
    http: _Http,
    what: str,
    probe: Probe,
) -> str | None:
    """Call ``probe`` until it returns a value; a finding when it never does."""
    deadline = asyncio.get_running_loop().time() + POLL_TIMEOUT
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            http.findings.fail(f"setup: {what} within {POLL_TIMEOUT:.0f} s")
            return None
        await asyncio.sleep(POLL_INTERVAL)


async def _await_propagation(
    http: _Http, urls: Mapping[str, str], a: Tenant, data: TenantData
) -> None:
    """Wait until the other services learnt A's operator and protocol (over Kafka)."""

    def first_item(service: str, path: str, params: Mapping[str, str]) -> Probe:
        async def probe() -> str | None:
            response = await http.send(
                f"{service} GET {path}",
                "GET",
                urls[service] + path,
                headers=a.headers,
                params=params,
            )
            if response is None or response.status_code != 200:
                return None
            items = response.json().get("items", [])
            return str(items[0]["id"]) if items else None

        return probe

    def answers(service: str, path: str, params: Mapping[str, str] | None = None) -> Probe:
        async def probe() -> str | None:
            response = await http.send(
                f"{service} GET {path}",
                "GET",
                urls[service] + path,
                headers=a.headers,
                params=params,
            )
            return "ok" if response is not None and response.status_code == 200 else None

        return probe

    ans = a.operator
    waits: list[Awaitable[str | None]] = [
        _poll(
            http,
            "igr-svc did not learn operator A",
            answers("igr-svc", f"/v1/igr/{ans}"),
        ),
        _poll(
            http,
            "deadline-svc did not learn operator A",
            answers(
                "deadline-svc",
                "/v1/calendar/add-business-days",
                {"start": datetime.now(UTC).date().isoformat(), "days": "1", "operator": ans},
            ),
        ),
    ]
    if data.protocol is not None:
        waits += [
            _poll(
                http,
                "deadline-svc showed no deadline of operator A",
                first_item("deadline-svc", "/v1/deadlines", {"protocol": data.protocol}),
            ),
            _poll(
                http,
                "notification-svc showed no notification of operator A",
                first_item("notification-svc", "/v1/notifications", {"protocol": data.protocol}),
            ),
            _poll(
                http,
                "retention-svc did not learn operator A's protocol",
                answers("retention-svc", "/v1/retention", {"protocol": data.protocol}),
            ),
        ]
    results = await asyncio.gather(*waits)
    if data.protocol is not None:
        data.deadline, data.notification = results[2], results[3]


async def _snapshot(
    http: _Http, urls: Mapping[str, str], a: Tenant, data: TenantData
) -> dict[str, object]:
    """What B must not be able to change, as A sees it."""
    ans = a.operator
    reads: dict[str, tuple[str, str, Mapping[str, str] | None, Callable[[Any], object]]] = {
        "registration": (
            "protocol-svc",
            f"/v1/operators/{ans}",
            None,
            lambda body: (body["revision"], body["name"]),
        ),
        "notification profile": (
            "notification-svc",
            f"/v1/operators/{ans}/notification-profile",
            None,
            lambda body: body["revision"],
        ),
        "protocols": (
            "protocol-svc",
            "/v1/protocols",
            {"operator": ans},
            lambda body: sorted(item["protocol_number"] for item in body["items"]),
        ),
        "legal holds": (
            "retention-svc",
            "/v1/legal-holds",
            {"operator": ans},
            lambda body: sorted((item["id"], item["active"]) for item in body["items"]),
        ),
        "access requests": (
            "retention-svc",
            "/v1/access-requests",
            {"operator": ans},
            lambda body: sorted(item["id"] for item in body["items"]),
        ),
    }
    if data.protocol is not None:
        reads["protocol"] = (
            "protocol-svc",
            f"/v1/protocols/{data.protocol}",
            None,
            lambda body: (
                body["status"],
                len(body["demands"]),
                len(body["answers"]),
                len(body["interactions"]),
            ),
        )
    if data.month is not None and data.quarter is not None:
        reads["beneficiary counts"] = (
            "igr-svc",
            f"/v1/operators/{ans}/beneficiaries",
            {"from": data.month, "to": data.month},
            lambda body: sorted((item["coverage"], item["count"]) for item in body["items"]),
        )
        reads["IGR individual"] = (
            "igr-svc",
            f"/v1/igr/{ans}",
            {"quarter": data.quarter},
            lambda body: sorted(
                (c["coverage"], c.get("igr_individual"))
                for c in (body.get("figures") or {}).get("coverages", [])
            ),
        )

    async def read(name: str) -> tuple[str, object]:
        service, path, params, pick = reads[name]
        response = await http.send(
            f"{service} GET {path}", "GET", urls[service] + path, headers=a.headers, params=params
        )
        if response is None or response.status_code != 200:
            status = response.status_code if response is not None else "no answer"
            http.findings.fail(f"operator A could not read its own {name} ({status})")
            return name, None
        return name, pick(response.json())

    return dict(await asyncio.gather(*(read(name) for name in reads)))


def isolation_attempts(data: TenantData, operator_b: str) -> list[Attempt]:
    """Everything operator B tries against operator A's data (what is known of it)."""
    ans = data.operator
    month = data.month or current_month()
    values = {
        "ans_registry": ans,
        "number": data.protocol,
        "deadline_id": data.deadline,
        "notification_id": data.notification,
        "hold_id": data.hold,
        "request_id": data.access_request,
        "month": month,
        "quarter": data.quarter or PLACEHOLDER_QUARTER,
    }
    attempts: list[Attempt] = []

    def add(service: str, operation: str, kind: Kind, **kw: Any) -> None:
        """``operation`` is ``METHOD /path/{template}``; skipped when a value is unknown."""
        method, template = operation.split(" ", 1)
        known = {**values, **kw.pop("ids", {})}
        names = re.findall(r"\{(\w+)\}", template)
        if all(known.get(name) for name in names):
            path = template.format_map(known)
            attempts.append(Attempt(service, method, template, path, kind, **kw))

    reason = "Verificacao de isolamento"
    theirs = {"operator": ans}
    p, d, n, r, i = "protocol-svc", "deadline-svc", "notification-svc", "retention-svc", "igr-svc"
    someone = {"name": "Outra pessoa"}
    # protocol-svc
    add(p, "GET /v1/operators/{ans_registry}", "read")
    add(p, "PUT /v1/operators/{ans_registry}", "write", body={**operator_body(ans), "name": "X"})
    add(p, "GET /v1/protocols", "list", params=theirs)
    add(p, "GET /v1/protocols", "list", owner_sees=True)
    add(p, "GET /v1/protocols", "list", params={"cpf": data.beneficiary["cpf"]}, owner_sees=True)
    add(p, "POST /v1/protocols", "write", body={**theirs, "channel": "web", "beneficiary": someone})
    add(p, "POST /v1/complaints", "write", body={**theirs, "source": "nip", "beneficiary": someone})
    add(p, "GET /v1/protocols/{number}", "read")
    demand = {"demand_type": "assistance", "description": "Demanda alheia"}
    add(p, "POST /v1/protocols/{number}/demands", "write", body=demand)
    note = {"kind": "note", "content": "Nota alheia"}
    add(p, "POST /v1/protocols/{number}/interactions", "write", body=note)
    answer = {"outcome": "authorized", "text": "Procedimento foi autorizado hoje."}
    for demand_id in (data.demand, data.reanalysis):
        ids = {"demand_id": demand_id}
        on_demand = "POST /v1/protocols/{number}/demands/{demand_id}"
        add(p, f"{on_demand}/answer", "write", ids=ids, body=answer)
        add(p, f"{on_demand}/reanalysis", "write", ids=ids, body={})
    if data.protocol is not None:
        # B names A's protocol in a request of its own operator
        mine = {"operator": operator_b, "protocol_number": data.protocol}
        add(p, "POST /v1/complaints", "reference", body={**mine, "source": "nip"})
        hold = {**mine, "scope": "protocol", "reason": reason}
        add(r, "POST /v1/legal-holds", "reference", body=hold)
        add(r, "POST /v1/access-requests", "reference", body=mine)
        add(
            r,
            "POST /v1/access-requests",
            "write",
            body={**theirs, "protocol_number": data.protocol},
        )
        by_protocol = {"protocol": data.protocol}
        add(d, "GET /v1/deadlines", "list", params=by_protocol, owner_sees=True)
        add(n, "GET /v1/notifications", "list", params=by_protocol, owner_sees=True)
        add(r, "GET /v1/retention", "read", params=by_protocol)
        for listing in ("/v1/legal-holds", "/v1/access-requests", "/v1/purges"):
            shown = listing != "/v1/purges"  # no purge of a fresh protocol
            add(r, f"GET {listing}", "list", params=by_protocol, owner_sees=shown)
    # deadline-svc
    add(d, "GET /v1/deadlines", "list", params=theirs)
    add(d, "GET /v1/deadlines", "list", owner_sees=data.deadline is not None)
    add(d, "GET /v1/deadlines/{deadline_id}", "read")
    calendar = {"start": "2025-07-01", "days": "5", "operator": ans}
    add(d, "GET /v1/calendar/add-business-days", "read", params=calendar)
    add(d, "POST /v1/operators/{ans_registry}/recompute", "write")
    # notification-svc
    add(n, "GET /v1/notifications", "list", params=theirs)
    add(n, "GET /v1/notifications", "list", owner_sees=data.notification is not None)
    add(n, "GET /v1/notifications/{notification_id}", "read")
    add(n, "GET /v1/operators/{ans_registry}/notification-profile", "read")
    profile = {"branding": {"display_name": "Outra"}}
    add(n, "PUT /v1/operators/{ans_registry}/notification-profile", "write", body=profile)
    # retention-svc
    for listing in ("/v1/legal-holds", "/v1/access-requests", "/v1/purges"):
        add(r, f"GET {listing}", "list", params=theirs)
        add(r, f"GET {listing}", "list", owner_sees=listing != "/v1/purges")
    add(r, "GET /v1/disposal-certificates", "list", params=theirs)
    add(r, "GET /v1/disposal-certificates", "list")
    add(r, "GET /v1/disposal-certificates/verify", "read", params=theirs)
    add(r, "GET /v1/purges/preview", "read", params=theirs)
    add(r, "POST /v1/legal-holds", "write", body={**theirs, "scope": "operator", "reason": reason})
    add(r, "GET /v1/legal-holds/{hold_id}", "read")
    add(r, "DELETE /v1/legal-holds/{hold_id}", "write", params={"reason": reason})
    add(r, "GET /v1/access-requests/{request_id}", "read")
    collecting = frozenset({200, 409})  # 409 while the bundle is being collected
    add(r, "GET /v1/access-requests/{request_id}/bundle", "read", owner_statuses=collecting)
    # igr-svc
    add(i, "GET /v1/operators/{ans_registry}/beneficiaries", "read")
    add(i, "PUT /v1/operators/{ans_registry}/beneficiaries/{month}", "write", body={"medical": 1})
    add(i, "PUT /v1/igr/{ans_registry}/individual/{quarter}", "write", body={"medical": "99.00"})
    add(i, "GET /v1/igr/{ans_registry}", "read")
    add(i, "GET /v1/igr/{ans_registry}/history", "read")
    add(i, "GET /v1/indicators/{ans_registry}", "read")
    add(i, "GET /v1/igr/ranking", "list", owner_sees=True)
    add(i, "GET /v1/igr/export", "list", params={"format": "json"}, owner_sees=True)
    add(i, "GET /v1/igr/export", "list", params={"format": "csv"}, owner_sees=True)
    header = "REGISTRO_ANS;COBERTURA;QTD_BENEFICIARIOS;COMPETENCIA_BENEFICIARIO"
    row = f"{ans};Assistência médica;1;{month.replace('-', '')}"
    csv = f"{header}\r\n{row}\r\n".encode()
    add(i, "POST /v1/beneficiaries/import", "write", content=csv, content_type="text/csv")
    # A quarter is closed for every operator at once: a token limited to some operators must
    # not be able to freeze the others' figures.
    add(i, "POST /v1/igr/quarters/{quarter}/close", "write", ids={"quarter": PLACEHOLDER_QUARTER})
    return attempts


async def _try_as_b(
    http: _Http,
    urls: Mapping[str, str],
    b: Tenant,
    attempt: Attempt,
    markers: set[str],
    operator_a: str,
) -> None:
    response = await _call(http, urls, attempt, b.headers, bad=True)
    if response is None:
        return
    status = response.status_code
    refused = status in (403, 404) or (attempt.kind == "reference" and status == 422)
    echoed = attempt.request_text().lower()
    hidden = {m for m in markers if m.lower() not in echoed}
    operator_echoed = operator_a in re.findall(r"[0-9]+", attempt.request_text())
    if refused:
        if not is_problem(response):
            http.findings.fail(f"{attempt.label}: operator B got {status} without problem+json")
    elif attempt.kind == "list" and 200 <= status < 300:
        pass
    else:
        http.findings.fail(f"{attempt.label}: operator B got {status} for operator A's data")
    if reveals(response.text, hidden, "" if operator_echoed else operator_a):
        http.findings.fail(f"{attempt.label}: operator B's answer shows operator A's data")


async def _read_as_a(
    http: _Http,
    urls: Mapping[str, str],
    a: Tenant,
    attempt: Attempt,
    markers: set[str],
    operator_a: str,
) -> None:
    """The same read as operator A succeeds (so the refusal above was about the tenant)."""
    response = await _call(http, urls, attempt, a.headers, bad=False)
    if response is None:
        return
    if attempt.kind == "read" and response.status_code not in attempt.owner_statuses:
        http.findings.fail(f"{attempt.label}: operator A itself got {response.status_code}")
    elif attempt.kind == "list":
        if response.status_code != 200:
            http.findings.fail(f"{attempt.label}: operator A itself got {response.status_code}")
        elif attempt.owner_sees and not reveals(response.text, markers, operator_a):
            http.findings.fail(f"{attempt.label}: operator A's own answer misses its data")


async def _idempotency_isolation(
    http: _Http, urls: Mapping[str, str], b: Tenant, data: TenantData
) -> None:
    """B reusing A's Idempotency-Key and contact id gets a protocol of its own, never A's."""
    if data.protocol is None:
        return
    label = "protocol-svc POST /v1/protocols (A's Idempotency-Key and contact_id)"
    response = await http.send(
        label,
        "POST",
        urls["protocol-svc"] + "/v1/protocols",
        bad=True,
        headers={**b.headers, "Idempotency-Key": data.idempotency_key},
        json={
            "operator": b.operator,
            "channel": "phone",
            "contact_id": data.contact_id,
            "beneficiary": {"name": "Beneficiaria de outra operadora"},
        },
    )
    if response is None:
        return
    if response.status_code != 201:
        http.findings.fail(f"{label}: operator B got {response.status_code}, not a new protocol")
    if data.protocol in response.text:
        http.findings.fail(f"{label}: operator B got operator A's protocol")


# ---- 3. schemathesis -------------------------------------------------------------------------


def run_schemathesis(
    urls: Mapping[str, str], secret: str, *, max_examples: int, workdir: Path
) -> SecurityFindings:
    """Fuzz every service's OpenAPI operations (webhooks excepted) with schemathesis as an
    all-operators admin: no 5xx, and answers that conform to the documented statuses,
    content types and schemas."""
    findings = SecurityFindings()
    token = make_token(secret, ttl=timedelta(hours=2))

    def fuzz(service: str) -> fuzzing.FuzzResult:
        return fuzzing.fuzz_service(
            service, urls[service], token, max_examples=max_examples, workdir=workdir
        )

    with ThreadPoolExecutor(max_workers=FUZZ_PARALLEL) as pool:
        results = list(pool.map(fuzz, urls))
    for result in results:
        findings.requests_tried += result.requests
        findings.bad_inputs_tried += result.negative_cases
        findings.failures.extend(result.failures)
    return findings


# ---- 4. logs ---------------------------------------------------------------------------------

MIN_PERSONAL_DATA_LENGTH = 4  # shorter strings would match everywhere; they say nothing


def personal_data_kind(value: str) -> str:
    """What a personal-data string is, for messages that must not quote it."""
    text = value.strip()
    digits = re.sub(r"\D", "", text)
    if "@" in text:
        return "e-mail address"
    if re.fullmatch(r"[\d\s.\-()/+]+", text) and digits:
        if len(digits) == 11 and not text.startswith("+") and _cpf_checks(digits):
            return "CPF"
        if text.startswith("+") or 10 <= len(digits) <= 13:
            return "phone number"
        return "document or card number"
    return "name or free text"


def _cpf_checks(digits: str) -> bool:
    return len(set(digits)) > 1 and valid_cpf(digits[:9]) == digits


_DIGIT_RUN = re.compile(r"\d(?:[\s.\-()/]*\d)*")
_DIGIT_GROUP = re.compile(r"\d+")
# A CPF has 11 digits, a Brazilian phone 10 to 13: longer or shorter spans are not looked up.
_SPAN_LENGTHS = range(8, 16)


def personal_data_needles(value: str) -> tuple[list[str], list[str]]:
    """What to look for in a log: ``value`` as written and JSON-escaped (lower-cased), and
    for digit strings (CPF, phone) its bare digits (also a Brazilian phone without +55)."""
    text = value.strip()
    plain = {text.lower(), json.dumps(text)[1:-1].lower()}
    digits = re.sub(r"\D", "", text)
    variants: set[str] = set()
    if re.fullmatch(r"[\d\s.\-()/+]+", text) and len(digits) >= 8:
        variants.add(digits)
        if digits.startswith("55") and len(digits) >= 12:
            variants.add(digits[2:])
    return sorted(plain), sorted(variants)


def digit_spans(text: str) -> set[str]:
    """Every number a reader could see in ``text`` with any punctuation dropped: within each
    run of digits and punctuation, the digits between any two punctuation breaks (so
    ``tel 11 99999-0001`` yields ``11999990001`` and ``999990001``, but a CPF's digits
    inside a longer bare number such as a protocol number do not count)."""
    spans: set[str] = set()
    for run in _DIGIT_RUN.findall(text):
        groups = _DIGIT_GROUP.findall(run)
        for i in range(len(groups)):
            joined = ""
            for group in groups[i:]:
                joined += group
                if len(joined) > _SPAN_LENGTHS[-1]:
                    break
                if len(joined) in _SPAN_LENGTHS:
                    spans.add(joined)
    return spans


def scan_logs(log_files: Iterable[Path], personal_data: Iterable[str]) -> SecurityFindings:
    """Report every log file holding one of the personal-data strings, never the string.

    Each file is read once into a lower-cased copy and the set of its ``digit_spans``;
    each value is then a substring or set lookup, so thousands of values over megabytes of
    logs take seconds (one regular expression per value took minutes).
    """
    findings = SecurityFindings()
    values = [
        v.strip()
        for v in dict.fromkeys(personal_data)
        if len(v.strip()) >= MIN_PERSONAL_DATA_LENGTH
    ]
    searches = [(personal_data_kind(v), *personal_data_needles(v)) for v in values]
    for path in log_files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            findings.fail(f"{path.name}: cannot be read ({type(exc).__name__})")
            continue
        lowered, spans = text.lower(), digit_spans(text)
        for kind, plain, digits in searches:
            if any(needle in lowered for needle in plain) or any(d in spans for d in digits):
                article = "an" if kind[0] in "aeiou" else "a"
                findings.fail(f"{path.name}: contains {article} {kind}")
    return findings
