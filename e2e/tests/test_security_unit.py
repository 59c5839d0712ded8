"""Pure logic of the security checks: tokens, path filling, leak detection, schemathesis
events and the log scan (no platform needed)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rn623_e2e import fuzzing
from rn623_e2e.security import (
    ADMIN,
    ALL_SCOPES,
    PLACEHOLDER_OPERATOR,
    PLACEHOLDER_PROTOCOL,
    PLACEHOLDER_QUARTER,
    REQUIRED_SCOPES,
    SERVICES,
    Operation,
    SecurityFindings,
    TenantData,
    bad_credentials,
    beneficiary_data,
    digit_spans,
    example_value,
    fill_path,
    isolation_attempts,
    make_token,
    operations_of,
    other_scopes,
    personal_data_kind,
    personal_data_needles,
    request_body,
    reveals,
    scan_logs,
    tampered_token,
    unsigned_token,
    valid_cpf,
)
from rn623_events.auth import AuthError, TokenVerifier
from rn623_events.clock import ManualClock
from rn623_events.contracts.common import cpf_has_valid_check_digits
from rn623_events.settings import AuthSettings

pytestmark = pytest.mark.unit

SECRET = "e2e-unit-secret-" + "x" * 32
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def _verifier() -> TokenVerifier:
    from pydantic import SecretStr

    return TokenVerifier(AuthSettings(secret=SecretStr(SECRET)), ManualClock(datetime.now(UTC)))


# ---- tokens --------------------------------------------------------------------------------


def test_a_made_token_is_accepted_by_the_services_verifier() -> None:
    token = make_token(SECRET, operators=["123456"], scopes=["igr:read", "protocols:write"])
    principal = _verifier().verify(token)
    assert principal.operators == frozenset({"123456"})
    assert principal.scopes == frozenset({"igr:read", "protocols:write"})


def test_every_bad_credential_is_refused_by_the_verifier() -> None:
    verifier = _verifier()
    credentials = bad_credentials(SECRET)
    assert len(credentials) >= 10
    for what, headers in credentials.items():
        value = headers.get("Authorization", "")
        if not value.startswith("Bearer ") or value.count(".") != 2:
            continue  # refused before verification: no bearer token at all, or not a JWT
        with pytest.raises(AuthError):
            verifier.verify(value.removeprefix("Bearer "))
        assert what  # labels are what failure messages show


def test_alg_none_and_tampered_tokens_keep_the_claims_but_not_the_signature() -> None:
    token = make_token(SECRET, operators=["123456"], scopes=["igr:read"], now=NOW)
    none = unsigned_token(token)
    header = json.loads(base64.urlsafe_b64decode(none.split(".")[0] + "=" * 4))
    assert header["alg"] == "none"
    assert none.endswith(".")
    assert _claims(none) == _claims(token)
    tampered = tampered_token(token)
    assert _claims(tampered)["operators"] == ["*"]
    assert _claims(tampered)["scope"] == ADMIN
    assert tampered.split(".")[2] == token.split(".")[2]


def test_expired_and_foreign_tokens_are_what_they_claim() -> None:
    expired = _claims(make_token(SECRET, now=NOW - timedelta(hours=2), ttl=timedelta(hours=1)))
    assert expired["exp"] < NOW.timestamp()
    audience = _claims(make_token(SECRET, audience="other"))
    assert audience["aud"] == "other"
    assert _claims(make_token(SECRET))["aud"] == AuthSettings().audience


def test_other_scopes_never_grant_the_required_one() -> None:
    for required in ALL_SCOPES:
        others = other_scopes(required)
        assert required not in others
        assert ADMIN not in others
        assert set(others) | {required, ADMIN} == set(ALL_SCOPES)


def test_the_scope_table_names_known_services_and_methods() -> None:
    for service, method, path in REQUIRED_SCOPES:
        assert service.endswith("-svc")
        assert method in ("GET", "PUT", "POST", "DELETE")
        assert path.startswith("/v1/")


# ---- operations and path filling -----------------------------------------------------------

DOCUMENT: dict[str, Any] = {
    "paths": {
        "/v1/protocols/{number}/demands/{demand_id}/answer": {
            "post": {
                "security": [{"bearerAuth": []}],
                "parameters": [
                    {"name": "number", "in": "path", "schema": {"pattern": "^[0-9]{20,30}$"}},
                    {"name": "demand_id", "in": "path", "schema": {"format": "uuid"}},
                ],
                "requestBody": {"content": {"application/json": {"schema": {}}}},
            }
        },
        "/v1/beneficiaries/import": {
            "post": {
                "security": [{"bearerAuth": []}],
                "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}},
            }
        },
        "/v1/webhooks/{provider}": {
            "post": {
                "parameters": [
                    {"name": "provider", "in": "path", "schema": {"enum": ["smtp", "zenvia"]}}
                ]
            }
        },
    }
}


def test_operations_say_whether_they_are_secured_and_what_body_they_take() -> None:
    found = {op.path: op for op in operations_of("svc", DOCUMENT)}
    answer = found["/v1/protocols/{number}/demands/{demand_id}/answer"]
    assert (answer.method, answer.secured, answer.body_media_type) == (
        "POST",
        True,
        "application/json",
    )
    assert found["/v1/webhooks/{provider}"].secured is False
    assert found["/v1/beneficiaries/import"].body_media_type == "text/csv"
    assert answer.label == "svc POST /v1/protocols/{number}/demands/{demand_id}/answer"


def test_paths_are_filled_with_values_their_schemas_accept() -> None:
    found = {op.path: op for op in operations_of("svc", DOCUMENT)}
    path = fill_path(found["/v1/protocols/{number}/demands/{demand_id}/answer"])
    match = re.fullmatch(r"/v1/protocols/([0-9]+)/demands/([0-9a-f-]{36})/answer", path)
    assert match is not None
    assert match.group(1) == PLACEHOLDER_PROTOCOL
    assert fill_path(found["/v1/webhooks/{provider}"]) == "/v1/webhooks/smtp"


@pytest.mark.parametrize(
    ("name", "schema", "pattern"),
    [
        ("ans_registry", {}, r"^[0-9]{6}$"),
        ("quarter", {}, r"^20[0-9]{2}Q[1-4]$"),
        ("month", {}, r"^20[0-9]{2}-(0[1-9]|1[0-2])$"),
        ("other", {"anyOf": [{"type": "null"}, {"format": "uuid"}]}, r"^[0-9a-f-]{36}$"),
        ("other", {"type": "integer", "minimum": 3}, r"^3$"),
        ("other", {"pattern": r"^[0-9]{6}$"}, r"^[0-9]{6}$"),
        ("other", {"pattern": r"^20[0-9]{2}Q[1-4]$"}, r"^20[0-9]{2}Q[1-4]$"),
        ("other", {"enum": ["csv", "json"]}, r"^csv$"),
    ],
)
def test_example_values_fit_their_parameter(
    name: str, schema: dict[str, Any], pattern: str
) -> None:
    assert re.fullmatch(pattern, example_value(name, schema))


def test_placeholders_are_well_formed() -> None:
    assert re.fullmatch(r"[0-9]{6}", PLACEHOLDER_OPERATOR)
    assert re.fullmatch(r"[0-9]{20}", PLACEHOLDER_PROTOCOL)
    assert PLACEHOLDER_PROTOCOL.startswith(PLACEHOLDER_OPERATOR)
    assert re.fullmatch(r"20[0-9]{2}Q[1-4]", PLACEHOLDER_QUARTER)


def test_bodies_are_minimal_and_well_formed() -> None:
    def operation(media: str | None) -> Operation:
        return Operation("svc", "POST", "/x", True, body_media_type=media)

    assert request_body(operation(None)) == {}
    assert request_body(operation("application/json")) == {"json": {}}
    assert request_body(operation("text/csv")) == {
        "content": b"",
        "headers": {"Content-Type": "text/csv"},
    }


# ---- tenant isolation ----------------------------------------------------------------------


def test_generated_cpfs_have_valid_check_digits() -> None:
    assert valid_cpf("529982247") == "52998224725"
    for _ in range(50):
        assert cpf_has_valid_check_digits(beneficiary_data()["cpf"])
    with pytest.raises(ValueError, match="nine digits"):
        valid_cpf("12345")


def test_reveals_finds_markers_and_the_operator_only_as_whole_values() -> None:
    markers = {"12345620260310000001", "isolamento.ab12@example.org"}
    assert reveals('{"items": [{"protocol_number": "12345620260310000001"}]}', markers, "123456")
    assert reveals('{"x": "ISOLAMENTO.AB12@EXAMPLE.ORG"}', markers, "123456")
    assert reveals('{"items": [{"operator": "123456"}]}', markers, "123456")
    assert reveals('{"123456": 1}', markers, "123456")
    assert reveals("REGISTRO_ANS;IGR\r\n123456;1,00\r\n", markers, "123456")
    # the registration inside another value (a protocol of another operator) is no leak
    assert not reveals('{"items": [{"protocol_number": "99123456000001"}]}', markers, "123456")
    assert not reveals("REGISTRO_ANS;IGR\r\n654321;1,00\r\n", markers, "123456")
    assert not reveals('{"items": []}', markers, "")
    assert not reveals('{"items": [""]}', set(), "")


def test_isolation_attempts_cover_every_service_and_kind() -> None:
    data = TenantData("123456", beneficiary_data())
    data.protocol, data.demand, data.hold = "12345620260310000001", "d-1", "h-1"
    data.month, data.quarter = "2026-01", "2026Q1"
    attempts = isolation_attempts(data, "654321")
    services = {attempt.service for attempt in attempts}
    assert services == set(SERVICES)
    kinds = {attempt.kind for attempt in attempts}
    assert kinds == {"read", "list", "write", "reference"}
    for attempt in attempts:
        assert "654321" not in attempt.path  # B always aims at A's resources
        if attempt.kind == "reference":
            assert "654321" in json.dumps(attempt.body)
    labels = [attempt.label for attempt in attempts]
    assert "retention-svc DELETE /v1/legal-holds/{hold_id}?reason" in labels
    assert "igr-svc POST /v1/igr/quarters/{quarter}/close" in labels
    without = isolation_attempts(TenantData("123456", beneficiary_data()), "654321")
    assert len(without) < len(attempts)  # what was not created is not attempted


def test_markers_hold_ids_and_personal_data_but_not_channels() -> None:
    data = TenantData("123456", beneficiary_data())
    data.protocol = "12345620260310000001"
    markers = data.markers()
    assert data.protocol in markers
    assert data.beneficiary["email"] in markers
    assert data.beneficiary["cpf"] in markers
    assert "['email']" not in markers


def test_findings_as_dict() -> None:
    findings = SecurityFindings(requests_tried=3, bad_inputs_tried=2)
    findings.fail("x-svc GET /v1/x: expired token got 200")
    assert findings.as_dict() == {
        "requests_tried": 3,
        "bad_inputs_tried": 2,
        "failures": ["x-svc GET /v1/x: expired token got 200"],
    }


# ---- schemathesis --------------------------------------------------------------------------


def _scenario(
    label: str, cases: dict[str, tuple[str, int, list[dict[str, Any]]]]
) -> dict[str, Any]:
    return {
        "ScenarioFinished": {
            "recorder": {
                "label": label,
                "cases": {
                    case: {"value": {"meta": {"generation": {"mode": mode}}}}
                    for case, (mode, _, _) in cases.items()
                },
                "checks": {case: checks for case, (_, _, checks) in cases.items()},
                "interactions": {
                    case: {"response": {"status_code": status}}
                    for case, (_, status, _) in cases.items()
                },
            }
        }
    }


def _failure(name: str, code: str, title: str, operation: str) -> dict[str, Any]:
    return {
        "name": name,
        "status": "failure",
        "failure_info": {"failure": {"code": code, "title": title, "operation": operation}},
    }


def test_schemathesis_events_become_counted_distinct_findings() -> None:
    server_error = _failure("not_a_server_error", "ST101", "Server error", "DELETE /v1/x/{id}")
    ok = {"name": "not_a_server_error", "status": "success"}
    events = [
        {"Initialize": {"seed": 42}},
        _scenario(
            "DELETE /v1/x/{id}",
            {
                "a": ("positive", 200, [ok]),
                "b": ("negative", 500, [server_error]),
                "c": ("negative", 500, [server_error]),  # the same failure again
            },
        ),
        _scenario("GET /v1/y", {"d": ("positive", 200, [ok])}),
        {"NonFatalError": {"label": "GET /v1/z", "info": {"title": "Schema error"}}},
    ]
    result = fuzzing.findings_of("x-svc", events)
    assert (result.requests, result.negative_cases) == (4, 2)
    assert result.failures == [
        "x-svc DELETE /v1/x/{id}: ST101 Server error (got 500) [schemathesis seed 42]",
        "x-svc GET /v1/z NonFatalError: Schema error [schemathesis seed 42]",
    ]


def test_the_schemathesis_config_takes_the_token_from_the_environment() -> None:
    text = fuzzing.config_text(7)
    assert "max-examples = 7" in text
    assert f"${{{fuzzing.AUTH_ENV_NAME}}}" in text
    assert "eyJ" not in text


# ---- logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("123.456.789-09", "CPF"),
        ("12345678909", "CPF"),
        ("+55 11 99999-0001", "phone number"),
        ("(11) 3333-4444", "phone number"),
        ("maria@example.org", "e-mail address"),
        ("Maria Aparecida", "name or free text"),
        ("900123456789012345", "document or card number"),
    ],
)
def test_personal_data_kinds(value: str, kind: str) -> None:
    assert personal_data_kind(value) == kind


def test_digits_match_whatever_their_punctuation() -> None:
    _, (cpf_digits,) = personal_data_needles("123.456.789-09")
    for text in ("cpf=12345678909", "cpf 123.456.789-09", "123 456 789 09"):
        assert cpf_digits in digit_spans(text), text
    assert cpf_digits not in digit_spans("protocol 9912345678909001")
    _, phone = personal_data_needles("+55 (11) 99999-0001")
    assert set(phone) & digit_spans('"to": "+5511999990001"')
    assert set(phone) & digit_spans("tel 11 99999 0001")


def test_scan_logs_reports_kinds_never_values(tmp_path: Path) -> None:
    clean = tmp_path / "clean.log"
    clean.write_text('{"message": "protocol opened", "operator": "123456"}\n', encoding="utf-8")
    dirty = tmp_path / "dirty.log"
    dirty.write_text(
        '{"message": "sent to MARIA@EXAMPLE.ORG", "cpf": "12345678909"}\n'
        '{"message": "Jos\\u00e9 Silva called"}\n',
        encoding="utf-8",
    )
    personal = ["maria@example.org", "123.456.789-09", "José Silva", "Ana", "+55 11 98888-7777"]
    findings = scan_logs([clean, dirty, tmp_path / "missing.log"], personal)
    assert findings.failures == [
        "dirty.log: contains an e-mail address",
        "dirty.log: contains a CPF",
        "dirty.log: contains a name or free text",
        "missing.log: cannot be read (FileNotFoundError)",
    ]
    text = " ".join(findings.failures).lower()
    for value in personal:
        assert value.lower() not in text
    assert (findings.requests_tried, findings.bad_inputs_tried) == (0, 0)
