"""Bearer-JWT minting, verification and the FastAPI guards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, FastAPI
from pydantic import SecretStr

from rn623_events import auth
from rn623_events.auth import (
    AuthError,
    Principal,
    TokenVerifier,
    ensure_operator,
    mint_token,
    require_scopes,
)
from rn623_events.clock import ManualClock
from rn623_events.problems import install_problem_handlers
from rn623_events.settings import AuthSettings

pytestmark = pytest.mark.unit

SECRET = "s" * 40
OTHER_SECRET = "o" * 40
START = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
SETTINGS = AuthSettings(secret=SecretStr(SECRET), issuer="rn623-test", audience="rn623")


def token(
    *,
    secret: str = SECRET,
    operators: tuple[str, ...] = ("123456",),
    scopes: tuple[str, ...] = ("protocols:write",),
    ttl: timedelta = timedelta(minutes=5),
    issuer: str = "rn623-test",
    audience: str = "rn623",
    now: datetime = START,
) -> str:
    """A test token; defaults are valid for SETTINGS at START."""
    return mint_token(
        secret,
        subject="contact-center",
        operators=operators,
        scopes=scopes,
        ttl=ttl,
        issuer=issuer,
        audience=audience,
        now=now,
    )


def verifier(clock: ManualClock | None = None, settings: AuthSettings = SETTINGS) -> TokenVerifier:
    """A verifier for SETTINGS on a manual clock at START."""
    return TokenVerifier(settings, clock or ManualClock(START))


# --- Principal -------------------------------------------------------------------------------


def test_principal_operators_and_scopes() -> None:
    principal = Principal("svc", frozenset({"123456"}), frozenset({"protocols:read"}))
    assert principal.can_act_for("123456")
    assert not principal.can_act_for("654321")
    assert principal.has_scope("protocols:read")
    assert not principal.has_scope("protocols:write")
    assert not principal.all_operators


def test_star_operators_act_for_everyone() -> None:
    principal = Principal("svc", frozenset({"*"}), frozenset())
    assert principal.all_operators
    assert principal.can_act_for("123456")
    assert principal.can_act_for("999999")


def test_admin_grants_every_scope() -> None:
    principal = Principal("ops", frozenset(), frozenset({"admin"}))
    assert principal.has_scope("protocols:write")
    assert principal.has_scope("anything")


# --- minting and verification ----------------------------------------------------------------


def test_mint_token_claims() -> None:
    claims = jwt.decode(
        token(scopes=("a", "b")), SECRET, algorithms=["HS256"], audience="rn623",
        options={"verify_exp": False, "verify_iat": False},
    )  # fmt: skip
    assert claims["sub"] == "contact-center"
    assert claims["iss"] == "rn623-test"
    assert claims["aud"] == "rn623"
    assert claims["iat"] == int(START.timestamp())
    assert claims["exp"] == int((START + timedelta(minutes=5)).timestamp())
    assert claims["operators"] == ["123456"]
    assert claims["scope"] == "a b"
    assert jwt.get_unverified_header(token())["alg"] == "HS256"


def test_mint_token_refuses_naive_time_and_short_secret() -> None:
    with pytest.raises(ValueError, match="timezone"):
        token(now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="32 bytes"):
        token(secret="short")


def test_verify_round_trip() -> None:
    principal = verifier().verify(token(operators=("123456", "654321"), scopes=("x", "y")))
    assert principal == Principal(
        "contact-center", frozenset({"123456", "654321"}), frozenset({"x", "y"})
    )


def test_star_claim_round_trip() -> None:
    principal = verifier().verify(token(operators=("*",)))
    assert principal.all_operators
    assert principal.can_act_for("000001")


def test_expiry_follows_the_injected_clock() -> None:
    clock = ManualClock(START)
    check = verifier(clock)
    valid = token(ttl=timedelta(minutes=5))
    clock.advance(timedelta(minutes=5, seconds=29))  # inside the 30 s leeway
    assert check.verify(valid).subject == "contact-center"
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthError) as caught:
        check.verify(valid)
    assert caught.value.reason == "expired"


def test_a_token_signature_is_checked_once_a_minute_its_times_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded = []
    real_decode = auth.jwt.decode
    monkeypatch.setattr(
        auth.jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k)
    )
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    clock = ManualClock(START)
    check = verifier(clock)
    valid = token(ttl=timedelta(minutes=5))
    for _ in range(3):
        check.verify(valid)
    assert len(decoded) == 1
    now[0] += auth.VERIFIED_TOKEN_SECONDS
    check.verify(valid)
    assert len(decoded) == 2
    clock.advance(timedelta(minutes=6))
    with pytest.raises(AuthError) as caught:
        check.verify(valid)  # still cached, yet expired
    assert caught.value.reason == "expired"
    assert len(decoded) == 2


def test_token_from_the_future_is_rejected() -> None:
    with pytest.raises(AuthError) as caught:
        verifier().verify(token(now=START + timedelta(minutes=2)))
    assert caught.value.reason == "not_yet_valid"


@pytest.mark.parametrize(
    ("bad_token", "reason"),
    [
        ("", "missing"),
        ("not-a-jwt", "malformed"),
        ("a.b.c", "malformed"),
        (token(secret=OTHER_SECRET), "bad_signature"),
        (token(audience="someone-else"), "wrong_audience"),
        (token(issuer="evil"), "wrong_issuer"),
        (jwt.encode({"sub": "x", "iss": "rn623-test", "aud": "rn623"}, SECRET), "missing_claim"),
        (
            jwt.encode(
                {"sub": "x", "iss": "rn623-test", "aud": "rn623", "iat": 1, "exp": 2**40},
                None,
                algorithm="none",
            ),
            "bad_algorithm",
        ),
        (
            jwt.encode(
                {
                    "sub": "x", "iss": "rn623-test", "aud": "rn623", "iat": START,
                    "exp": START + timedelta(hours=1), "operators": "123456",
                },
                SECRET,
            ),
            "malformed",
        ),
    ],
)  # fmt: skip
def test_invalid_tokens(bad_token: str, reason: str) -> None:
    with pytest.raises(AuthError) as caught:
        verifier().verify(bad_token)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_verifier_refuses_to_be_built_without_a_key() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        TokenVerifier(AuthSettings(secret=None, public_key=None, jwks_url=None), ManualClock(START))
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier(AuthSettings(secret=SecretStr("short")), ManualClock(START))
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier(
            AuthSettings(secret=SecretStr(SECRET), jwks_url="https://idp.example/jwks"),
            ManualClock(START),
        )


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


def _rs256(private: rsa.RSAPrivateKey, kid: str | None = None, **overrides: Any) -> str:
    claims = {
        "sub": "idp-user", "iss": "rn623-test", "aud": "rn623", "iat": START,
        "exp": START + timedelta(minutes=5), "operators": ["*"], "scope": "admin",
    }  # fmt: skip
    claims.update(overrides)
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid} if kid else None)


def test_rs256_with_public_key() -> None:
    private, public_pem = _rsa_pair()
    check = verifier(settings=AuthSettings(public_key=public_pem, issuer="rn623-test"))
    assert check.verify(_rs256(private)).has_scope("protocols:write")
    other, _ = _rsa_pair()
    with pytest.raises(AuthError, match="bad_signature"):
        check.verify(_rs256(other))
    # An HS256 token signed with the public key text must not pass (algorithm confusion).
    with pytest.raises(AuthError, match="bad_algorithm"):
        check.verify(jwt.encode({"sub": "x"}, "k" * 40, algorithm="HS256"))


def test_public_key_with_escaped_newlines_and_bad_keys() -> None:
    private, public_pem = _rsa_pair()
    escaped = public_pem.replace("\n", "\\n")
    check = verifier(settings=AuthSettings(public_key=escaped, issuer="rn623-test"))
    assert check.verify(_rs256(private)).subject == "idp-user"
    with pytest.raises(ValueError, match=r"PEM|RSA|Could not"):
        verifier(settings=AuthSettings(public_key="not a key"))


def test_rs256_with_jwks(monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = _rsa_pair()
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid="k1", use="sig", alg="RS256")
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda self: {"keys": [jwk]})
    check = verifier(
        settings=AuthSettings(jwks_url="https://idp.example/jwks", issuer="rn623-test")
    )
    assert check.blocking
    assert check.verify(_rs256(private, kid="k1")).subject == "idp-user"
    with pytest.raises(AuthError, match="unknown_key"):
        check.verify(_rs256(private, kid="k2"))


# --- FastAPI guards ----------------------------------------------------------------------------


def _app() -> FastAPI:
    router = APIRouter(prefix="/v1")

    @router.post("/operators/{ans_registry}/protocols")
    async def open_protocol(
        ans_registry: str,
        principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
    ) -> dict[str, str]:
        ensure_operator(principal, ans_registry)
        return {"subject": principal.subject}

    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier()
    app.include_router(router)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the guarded test app."""
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_valid_token_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/operators/123456/protocols", headers=_bearer(token()))
    assert response.status_code == 200
    assert response.json() == {"subject": "contact-center"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "missing"),
        (_bearer("garbage"), "malformed"),
        (_bearer(token(ttl=timedelta(seconds=-60))), "expired"),
        (_bearer(token(secret=OTHER_SECRET)), "bad_signature"),
        (_bearer(token(audience="other")), "wrong_audience"),
    ],
)
async def test_unauthenticated_requests_get_401(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await client.post("/v1/operators/123456/protocols", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    body = response.json()
    assert body["status"] == 401
    assert body["type"] == "urn:rn623:problem:unauthorized"
    assert body["reason"] == reason
    for value in headers.values():
        assert value.split()[-1] not in response.text


async def test_missing_scope_gets_403(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/operators/123456/protocols", headers=_bearer(token(scopes=("protocols:read",)))
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["type"] == "urn:rn623:problem:insufficient-scope"


async def test_admin_scope_passes(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/operators/123456/protocols", headers=_bearer(token(scopes=("admin",)))
    )
    assert response.status_code == 200


async def test_other_operator_gets_403(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/operators/654321/protocols", headers=_bearer(token()))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:rn623:problem:operator-forbidden"


async def test_star_operator_acts_for_any(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/operators/654321/protocols", headers=_bearer(token(operators=("*",)))
    )
    assert response.status_code == 200


def test_ensure_operator_raises_403_problem() -> None:
    from rn623_events.problems import ProblemError

    principal = Principal("svc", frozenset({"123456"}), frozenset())
    ensure_operator(principal, "123456")
    with pytest.raises(ProblemError) as caught:
        ensure_operator(principal, "654321")
    assert caught.value.status == 403


def test_openapi_declares_the_bearer_scheme() -> None:
    schema = _app().openapi()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    operation = schema["paths"]["/v1/operators/{ans_registry}/protocols"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
