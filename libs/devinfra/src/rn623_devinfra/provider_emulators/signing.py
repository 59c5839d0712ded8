"""Callback signatures, computed the way the real providers compute them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL + sorted POST names and values."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()


def meta_signature_256(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256``: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def meta_signature_sha1(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature`` (legacy, still sent by Meta): ``sha1=`` + hex HMAC-SHA1."""
    return "sha1=" + hmac.new(app_secret.encode(), body, hashlib.sha1).hexdigest()
