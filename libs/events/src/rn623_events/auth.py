"""Bearer-JWT authentication: token minting and verification, principals, FastAPI guards."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from rn623_events.clock import Clock
from rn623_events.problems import ProblemError, problem_type
from rn623_events.settings import AuthSettings

ALL_OPERATORS = "*"
ADMIN_SCOPE = "admin"
HS256_MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: at least the hash output size
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# How long a token whose signature verified is trusted without checking it again (its
# time claims are checked every time), and how many such tokens a process remembers.
VERIFIED_TOKEN_SECONDS = 60.0
VERIFIED_TOKENS_KEPT = 4096

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="JWT whose `operators` claim lists ANS registrations and `scope` the scopes.",
)


class AuthError(Exception):
    """A token was rejected; ``reason`` is a short machine-readable code, never token data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who it is, which operators it may act for, its scopes."""

    subject: str
    operators: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def all_operators(self) -> bool:
        """Whether the caller may act for every operator (``operators`` claim ``["*"]``)."""
        return ALL_OPERATORS in self.operators

    def can_act_for(self, ans_registry: str) -> bool:
        """Whether the caller may read or change data of operator ``ans_registry``."""
        return self.all_operators or ans_registry in self.operators

    def has_scope(self, scope: str) -> bool:
        """Whether the caller holds ``scope``; ``admin`` grants every scope."""
        return ADMIN_SCOPE in self.scopes or scope in self.scopes


def _check_secret(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < HS256_MIN_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {HS256_MIN_SECRET_BYTES} bytes")
    return key


def mint_token(
    secret: str,
    *,
    subject: str,
    operators: Sequence[str],
    scopes: Sequence[str],
    ttl: timedelta,
    issuer: str,
    audience: str,
    now: datetime,
) -> str:
    """Sign an HS256 token with the platform's claims (development and tests)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    claims = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
        "operators": list(operators),
        "scope": " ".join(scopes),
    }
    return jwt.encode(claims, _check_secret(secret), algorithm="HS256")


def bearer_headers(
    secret: str,
    *,
    operators: Sequence[str] = ("*",),
    scopes: Sequence[str] = (ADMIN_SCOPE,),
    subject: str = "test",
    ttl: timedelta = timedelta(hours=1),
) -> dict[str, str]:
    """Authorization headers with a token minted now for the default issuer and audience
    (tests, benchmarks)."""
    settings = AuthSettings(secret=secret)
    token = mint_token(
        secret,
        subject=subject,
        operators=operators,
        scopes=scopes,
        ttl=ttl,
        issuer=settings.issuer,
        audience=settings.audience,
        now=datetime.now(UTC),
    )
    return {"Authorization": f"Bearer {token}"}


class TokenVerifier:
    """Verifies bearer tokens against the configured key, expiring them by the given clock."""

    def __init__(self, settings: AuthSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._jwks: jwt.PyJWKClient | None = None
        self._key: bytes | RSAPublicKey | None = None
        # A contact-center platform sends the same token with thousands of requests: its
        # signature is checked once a minute, its times on every request.
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}
        secret = settings.secret.get_secret_value() if settings.secret else ""
        configured = [bool(secret), bool(settings.public_key), bool(settings.jwks_url)]
        if sum(configured) != 1:
            raise ValueError(
                "configure exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL "
                "(there is no unauthenticated mode)"
            )
        if settings.jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, timeout=5)
            self._algorithm = "RS256"
        elif settings.public_key:
            # Environment variables often carry the PEM with escaped newlines.
            pem = settings.public_key.replace("\\n", "\n")
            key = load_pem_public_key(pem.encode())
            if not isinstance(key, RSAPublicKey):
                raise ValueError("JWT_PUBLIC_KEY must be an RSA public key in PEM format")
            self._key, self._algorithm = key, "RS256"
        else:
            self._key, self._algorithm = _check_secret(secret), "HS256"

    @property
    def blocking(self) -> bool:
        """Whether ``verify`` may do network I/O (JWKS fetch) and belongs in a thread."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """Validate ``token`` and return its principal, or raise ``AuthError``."""
        if not token:
            raise AuthError("missing")
        now = time.monotonic()
        cached = self._verified.get(token)
        if cached is not None and now - cached[0] < VERIFIED_TOKEN_SECONDS:
            claims = cached[1]
        else:
            claims = self._decode(token)
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.clear()
            self._verified[token] = (now, claims)
        self._check_times(claims)
        return _principal(claims)

    def _signing_key(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise AuthError("key_unavailable") from None
        except jwt.PyJWKClientError:
            raise AuthError("unknown_key") from None
        except jwt.DecodeError:
            raise AuthError("malformed") from None

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._signing_key(token),
                algorithms=[self._algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                # Time claims are checked against the injectable clock in _check_times.
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthError("bad_signature") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("bad_algorithm") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("wrong_issuer") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError("missing_claim") from None
        except jwt.DecodeError:
            raise AuthError("malformed") from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid") from None

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock.now().timestamp()
        leeway = self._settings.leeway_seconds
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise AuthError("malformed")
        if claims["exp"] <= now - leeway:
            raise AuthError("expired")
        if claims["iat"] > now + leeway or claims.get("nbf", now) > now + leeway:
            raise AuthError("not_yet_valid")


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]
    operators = claims.get("operators", [])
    scope = claims.get("scope", "")
    scopes = scope.split() if isinstance(scope, str) else scope
    if not (
        isinstance(subject, str) and subject and _is_str_list(operators) and _is_str_list(scopes)
    ):
        raise AuthError("malformed")
    return Principal(subject, frozenset(operators), frozenset(scopes))


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _unauthorized(reason: str) -> ProblemError:
    return ProblemError(
        401,
        "Unauthorized",
        "A valid bearer token is required.",
        problem_type("unauthorized"),
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
        reason=reason,
    )


def _forbidden(detail: str, slug: str, headers: Mapping[str, str] | None = None) -> ProblemError:
    return ProblemError(403, "Forbidden", detail, problem_type(slug), headers=headers)


async def _verify(request: Request, token: str) -> Principal:
    verifier: TokenVerifier = request.app.state.token_verifier
    if verifier.blocking:
        return await run_in_threadpool(verifier.verify, token)
    return verifier.verify(token)


def require_scopes(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency authenticating the bearer token and requiring every one of ``scopes``."""

    async def authenticated_principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("missing")
        try:
            principal = await _verify(request, credentials.credentials)
        except AuthError as exc:
            raise _unauthorized(exc.reason) from None
        missing = [scope for scope in scopes if not principal.has_scope(scope)]
        if missing:
            challenge = f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}"'
            raise _forbidden(
                f"Missing scope: {' '.join(missing)}.",
                "insufficient-scope",
                {"WWW-Authenticate": challenge},
            )
        return principal

    return authenticated_principal


def ensure_operator(principal: Principal, ans_registry: str) -> None:
    """Raise a 403 problem unless ``principal`` may act for operator ``ans_registry``."""
    if not principal.can_act_for(ans_registry):
        raise _forbidden("Not allowed to act for this operator.", "operator-forbidden")
