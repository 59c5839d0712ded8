"""Mint development JWTs with the platform's own minting function."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

ALL_OPERATORS = "*"
_OPERATOR = re.compile(r"^\d{6}$")


def validate_operators(operators: Sequence[str]) -> list[str]:
    """Return the operators if each is a 6-digit ANS registration or ``*``; else raise."""
    for operator in operators:
        if operator != ALL_OPERATORS and not _OPERATOR.fullmatch(operator):
            raise ValueError(f"operator {operator!r} is not a 6-digit ANS registration or '*'")
    return list(operators)


def mint_dev_token(
    secret: str,
    *,
    operators: Sequence[str] = (ALL_OPERATORS,),
    scopes: Sequence[str] = ("admin",),
    ttl: timedelta = timedelta(hours=12),
    subject: str = "dev",
) -> str:
    """Mint an HS256 token with the issuer and audience of ``AuthSettings`` (env ``JWT_*``)."""
    from rn623_events.auth import mint_token
    from rn623_events.clock import SystemClock
    from rn623_events.settings import AuthSettings

    auth = AuthSettings()
    return mint_token(
        secret,
        subject=subject,
        operators=validate_operators(operators),
        scopes=list(scopes),
        ttl=ttl,
        issuer=auth.issuer,
        audience=auth.audience,
        now=SystemClock().now(),
    )
