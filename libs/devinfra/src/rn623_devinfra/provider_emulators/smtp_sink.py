"""SMTP sink (aiosmtpd on the running event loop): stores every e-mail, delivers none.

It accepts any envelope, and any AUTH credentials (even without TLS), so an adapter
configured for a real submission server works against it unchanged. Faults of provider
``smtp`` apply at the DATA stage: ``rate_limit`` and ``server_error`` answer 451,
``reject`` 550, ``timeout`` holds the reply ``seconds`` and then accepts (unless the
client hung up first: then the session ends and nothing is stored, as with a real server).
"""

from __future__ import annotations

import asyncio
import email
import logging
import uuid
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from rn623_devinfra.provider_emulators.store import REQUEST_FAULTS, EmulatorStore

SINK_HOSTNAME = "rn623-smtp-sink"

_FAULT_REPLIES = {
    "rate_limit": "451 4.7.1 Rate limit exceeded, try again later",
    "server_error": "451 4.3.0 Temporary server error, try again later",
    "reject": "550 5.7.1 Message rejected",
}


class _LoginDataWarningFilter(logging.Filter):
    """Drops aiosmtpd's own deprecation warning, logged on every successful AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but that warning."""
        return "login_data is deprecated" not in record.getMessage()


def _accept_any(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=True)


def _header_text(value: str) -> str:
    """A raw header value unfolded and its encoded words decoded, as ``policy.default`` reads it."""
    return str(make_header(decode_header(value.replace("\r\n", "").replace("\n", ""))))


def _bodies(message: Message) -> dict[str, str]:
    """The first text/plain and text/html body that is not an attachment, decoded."""
    bodies: dict[str, str] = {}
    for part in message.walk():
        subtype = part.get_content_subtype()
        if (
            part.is_multipart()
            or part.get_content_maintype() != "text"
            or subtype in bodies
            or part.get_content_disposition() == "attachment"
        ):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            try:
                text = payload.decode(part.get_content_charset() or "us-ascii", "replace")
            except LookupError:  # an unknown charset: UTF-8, as policy.default falls back
                text = payload.decode("utf-8", "replace")
            bodies[subtype] = text
    return bodies


class SmtpSinkHandler:
    """aiosmtpd handler that records each message in the store."""

    def __init__(self, store: EmulatorStore) -> None:
        self._store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message (or answer as an injected fault says)."""
        self._store.count_request("smtp")
        fault = self._store.take_fault("smtp", "email", REQUEST_FAULTS)
        if fault is not None:
            if fault.mode == "timeout":
                await asyncio.sleep(fault.seconds or 0)
            else:
                return _FAULT_REPLIES[fault.mode]
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        # compat32 and explicit decoding: policy.default gives the same fields at ~8x the
        # CPU, which the benchmarks' shared cores would pay on every e-mail.
        parsed = email.message_from_bytes(raw, policy=policy.compat32)
        headers = [(key, _header_text(value)) for key, value in parsed.items()]
        bodies = _bodies(parsed)
        message_id = next(
            (value for key, value in headers if key.lower() == "message-id"),
            f"<{uuid.uuid4()}@{SINK_HOSTNAME}>",
        )
        subject = next((value for key, value in headers if key.lower() == "subject"), "")
        self._store.add(
            provider="smtp",
            channel="email",
            id=message_id,
            to=list(envelope.rcpt_tos),
            sender=envelope.mail_from or "",
            text=bodies.get("plain"),
            html=bodies.get("html"),
            subject=subject,
            headers=headers,
            request={
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content_type": parsed.get_content_type(),
                "size": len(raw),
            },
            status="received",
        )
        return "250 2.0.0 Message accepted for delivery"


async def start_smtp_sink(store: EmulatorStore, host: str, port: int) -> asyncio.Server:
    """Listen for SMTP on ``host:port`` (0: a free port) on the running loop."""
    loop = asyncio.get_running_loop()
    handler = SmtpSinkHandler(store)
    mail_log = logging.getLogger("mail.log")
    if not any(isinstance(f, _LoginDataWarningFilter) for f in mail_log.filters):
        mail_log.addFilter(_LoginDataWarningFilter())

    def protocol() -> SMTP:
        """One SMTP session."""
        return SMTP(
            handler,
            hostname=SINK_HOSTNAME,
            ident="rn623 SMTP sink",
            auth_require_tls=False,
            authenticator=_accept_any,
            loop=loop,
        )

    return await loop.create_server(protocol, host=host, port=port)
