"""Provider adapters against the local provider emulators (real loopback servers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtpd.smtp
import httpx
import pytest
import pytest_asyncio

from notification_svc.provider_setup import Providers
from notification_svc.providers import (
    MetaWhatsAppProvider,
    OutboundMessage,
    Provider,
    ProviderError,
    SmtpProvider,
    StatusUpdate,
    TwilioProvider,
    WebhookRejected,
    WhatsAppTemplate,
    ZenviaProvider,
    verify_subscription,
)
from notification_svc.providers.base import http_status_error, parse_retry_after
from notification_svc.providers.meta import meta_signature
from notification_svc.providers.twilio import twilio_signature
from notification_svc_testdata import service_settings
from rn623_devinfra.ports import free_port
from rn623_devinfra.provider_emulators import (
    DEV_META_ACCESS_TOKEN,
    DEV_META_APP_SECRET,
    DEV_META_PHONE_NUMBER_ID,
    DEV_TWILIO_ACCOUNT_SID,
    DEV_TWILIO_AUTH_TOKEN,
    DEV_ZENVIA_API_TOKEN,
    DEV_ZENVIA_WEBHOOK_TOKEN,
    CallbackReceiver,
    EmulatorConfig,
    ProviderName,
    ReceivedRequest,
    RunningEmulators,
    running_callback_receiver,
    running_emulators,
)

PHONE = "+5511990000001"
SMS_SENDER = "rn623-dev"
WHATSAPP_SENDER = "+5511990000100"
TWILIO_WEBHOOK_PATH = "/v1/webhooks/twilio"


# --- servers and adapters ---------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    """Stands in for notification-svc's webhook endpoint."""
    async with running_callback_receiver() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def emulators(receiver: CallbackReceiver) -> AsyncIterator[RunningEmulators]:
    """The provider emulators, calling back into ``receiver``."""
    config = EmulatorConfig(
        zenvia_webhook_url=f"{receiver.url}/v1/webhooks/zenvia",
        meta_webhook_url=f"{receiver.url}/v1/webhooks/meta",
        delivered_delay=0.02,
        callback_backoff=0.01,
    )
    async with running_emulators(config) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def emu(
    emulators: RunningEmulators, receiver: CallbackReceiver
) -> AsyncIterator[RunningEmulators]:
    """The shared emulators, clean for each test."""
    await emulators.reset()
    receiver.requests.clear()
    yield emulators
    await emulators.reset()
    receiver.requests.clear()


@pytest_asyncio.fixture(loop_scope="session")
async def shared_client() -> AsyncIterator[httpx.AsyncClient]:
    """One HTTP client shared by the adapters, as the service would."""
    async with httpx.AsyncClient() as client:
        yield client


def make_zenvia(
    emu: RunningEmulators, client: httpx.AsyncClient | None = None, **overrides: Any
) -> ZenviaProvider:
    kwargs: dict[str, Any] = {
        "base_url": emu.zenvia_base_url,
        "api_token": DEV_ZENVIA_API_TOKEN,
        "webhook_token": DEV_ZENVIA_WEBHOOK_TOKEN,
        "template_ids": {"receipt": "tpl-receipt-0001"},
        "timeout": 2.0,
        "client": client,
    }
    return ZenviaProvider(**(kwargs | overrides))


def make_twilio(
    emu: RunningEmulators,
    receiver: CallbackReceiver,
    client: httpx.AsyncClient | None = None,
    **overrides: Any,
) -> TwilioProvider:
    kwargs: dict[str, Any] = {
        "base_url": emu.twilio_base_url,
        "account_sid": DEV_TWILIO_ACCOUNT_SID,
        "auth_token": DEV_TWILIO_AUTH_TOKEN,
        "status_callback_url": f"{receiver.url}{TWILIO_WEBHOOK_PATH}",
        "content_sids": {"receipt": "HX" + "0123456789abcdef" * 2},
        "timeout": 2.0,
        "client": client,
    }
    return TwilioProvider(**(kwargs | overrides))


def make_meta(
    emu: RunningEmulators, client: httpx.AsyncClient | None = None, **overrides: Any
) -> MetaWhatsAppProvider:
    kwargs: dict[str, Any] = {
        "base_url": emu.meta_base_url,
        "access_token": DEV_META_ACCESS_TOKEN,
        "app_secret": DEV_META_APP_SECRET,
        "timeout": 2.0,
        "client": client,
    }
    return MetaWhatsAppProvider(**(kwargs | overrides))


def sms(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "delivery_id": uuid.uuid4(),
        "channel": "sms",
        "to": PHONE,
        "sender": SMS_SENDER,
        "text": "Protocolo 00000120251121000001 registrado.",
    }
    return OutboundMessage(**(fields | overrides))


def whatsapp(sender: str = WHATSAPP_SENDER, **overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "delivery_id": uuid.uuid4(),
        "channel": "whatsapp",
        "to": PHONE,
        "sender": sender,
        "text": "Protocolo 00000120251121000001 registrado.",
        "template": WhatsAppTemplate("receipt", parameters=("00000120251121000001", "Exemplo")),
    }
    return OutboundMessage(**(fields | overrides))


def parse_all(provider: Provider, callbacks: list[ReceivedRequest]) -> list[StatusUpdate]:
    return [
        update
        for callback in callbacks
        for update in provider.parse_webhook(callback.url, callback.headers, callback.body)
    ]


# --- Zenvia -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_zenvia_sms_send_and_callbacks(
    emu: RunningEmulators, receiver: CallbackReceiver, shared_client: httpx.AsyncClient
) -> None:
    provider = make_zenvia(emu, shared_client)
    message = sms()
    result = await provider.send(message)
    [stored] = emu.messages("zenvia", "sms")
    assert result.provider_message_id == stored.id
    assert result.status == "sent"
    assert stored.external_id == str(message.delivery_id)
    assert stored.to == ["5511990000001"]
    assert stored.text == message.text

    updates = parse_all(provider, await receiver.wait_for(2, path="/v1/webhooks/zenvia"))
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (result.provider_message_id, "sent"),
        (result.provider_message_id, "delivered"),
    ]
    assert all(u.at is not None and u.at.tzinfo is not None for u in updates)
    await provider.aclose()
    assert not shared_client.is_closed  # a shared client belongs to its owner


@pytest.mark.integration
async def test_zenvia_whatsapp_template(emu: RunningEmulators) -> None:
    provider = make_zenvia(emu)
    try:
        await provider.send(whatsapp())
    finally:
        await provider.aclose()
    [stored] = emu.messages("zenvia", "whatsapp")
    assert stored.template == {
        "id": "tpl-receipt-0001",
        "fields": {"1": "00000120251121000001", "2": "Exemplo"},
    }


@pytest.mark.integration
async def test_zenvia_callback_with_wrong_or_missing_token_is_rejected(
    emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    provider = make_zenvia(emu)
    try:
        await provider.send(sms())
        [callback] = await receiver.wait_for(1)
    finally:
        await provider.aclose()
    wrong = {**callback.headers, "x-zenvia-webhook-token": "not-the-token"}
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(callback.url, wrong, callback.body)
    missing = {k: v for k, v in callback.headers.items() if k != "x-zenvia-webhook-token"}
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(callback.url, missing, callback.body)
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(callback.url, callback.headers, b"not json")
    # Zenvia does not sign: without a configured token no callback can be trusted.
    unguarded = make_zenvia(emu, webhook_token=None)
    with pytest.raises(WebhookRejected):
        unguarded.parse_webhook(callback.url, callback.headers, callback.body)
    await unguarded.aclose()


# --- Twilio -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_twilio_sms_send_and_signed_callbacks(
    emu: RunningEmulators, receiver: CallbackReceiver, shared_client: httpx.AsyncClient
) -> None:
    provider = make_twilio(emu, receiver, shared_client)
    result = await provider.send(sms(sender="+5511990000100"))
    [stored] = emu.messages("twilio", "sms")
    assert result.provider_message_id == stored.id
    assert result.provider_message_id.startswith("SM")
    assert stored.request["StatusCallback"] == f"{receiver.url}{TWILIO_WEBHOOK_PATH}"
    assert stored.request["Body"].startswith("Protocolo")

    callbacks = await receiver.wait_for(2, path=TWILIO_WEBHOOK_PATH)
    updates = parse_all(provider, callbacks)
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (result.provider_message_id, "sent"),
        (result.provider_message_id, "delivered"),
    ]
    callback = callbacks[0]
    with pytest.raises(WebhookRejected):  # tampered body
        provider.parse_webhook(callback.url, callback.headers, callback.body + b"&Extra=1")
    with pytest.raises(WebhookRejected):  # another URL than the one Twilio signed
        make_twilio(emu, receiver, status_callback_url=None).parse_webhook(
            callback.url + "?x=1", callback.headers, callback.body
        )
    # Behind a proxy the request URL differs; the configured public URL still verifies.
    proxied = provider.parse_webhook("http://10.0.0.5:8003/x", callback.headers, callback.body)
    assert proxied == updates[:1]
    other_token = make_twilio(emu, receiver, auth_token="another-token")
    with pytest.raises(WebhookRejected):
        other_token.parse_webhook(callback.url, callback.headers, callback.body)
    unsigned = {k: v for k, v in callback.headers.items() if k != "x-twilio-signature"}
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(callback.url, unsigned, callback.body)
    await other_token.aclose()


@pytest.mark.integration
async def test_twilio_whatsapp_content_template_and_body(
    emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    provider = make_twilio(emu, receiver)
    try:
        await provider.send(whatsapp())
        unmapped = whatsapp(template=WhatsAppTemplate("answer", parameters=("x",)))
        await provider.send(unmapped)
    finally:
        await provider.aclose()
    templated, plain = emu.messages("twilio", "whatsapp")
    assert templated.request["To"] == f"whatsapp:{PHONE}"
    assert templated.request["From"] == f"whatsapp:{WHATSAPP_SENDER}"
    assert templated.template == {
        "content_sid": "HX" + "0123456789abcdef" * 2,
        "variables": {"1": "00000120251121000001", "2": "Exemplo"},
    }
    assert "Body" not in templated.request
    assert plain.template is None
    assert plain.text == unmapped.text


def test_twilio_signature_matches_the_documented_example() -> None:
    # The worked example of Twilio's "validating requests" documentation (fictional data).
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675310",
        "Digits": "1234",
        "From": "+14158675310",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params.items()) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_twilio_status_mapping() -> None:
    provider = TwilioProvider(account_sid="AC1", auth_token="t", base_url="http://127.0.0.1:9")
    url = "https://example.org/v1/webhooks/twilio"

    def parse(fields: dict[str, str]) -> list[StatusUpdate]:
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        headers = {"X-Twilio-Signature": twilio_signature("t", url, fields.items())}
        return provider.parse_webhook(url, headers, body)

    assert parse({"MessageSid": "SM1", "MessageStatus": "read"})[0].status == "read"
    assert parse({"MessageSid": "SM1", "MessageStatus": "queued"})[0].status == "sent"
    failed = parse({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "30007"})
    assert (failed[0].status, failed[0].error_code) == ("failed", "30007")
    assert parse({"MessageSid": "SM1", "MessageStatus": "received"}) == []
    # The signature also verifies when the URL is given with its default port.
    signed_without_port = parse({"MessageSid": "SM2", "MessageStatus": "sent"})
    assert signed_without_port[0].provider_message_id == "SM2"
    fields = {"MessageSid": "SM3", "MessageStatus": "sent"}
    headers = {"x-twilio-signature": twilio_signature("t", url, fields.items())}
    body = b"MessageSid=SM3&MessageStatus=sent"
    port_url = "https://example.org:443/v1/webhooks/twilio"
    assert provider.parse_webhook(port_url, headers, body)[0].provider_message_id == "SM3"


# --- Meta ---------------------------------------------------------------------------------


@pytest.mark.integration
async def test_meta_send_and_signed_callbacks(
    emu: RunningEmulators, receiver: CallbackReceiver, shared_client: httpx.AsyncClient
) -> None:
    provider = make_meta(emu, shared_client)
    result = await provider.send(whatsapp(sender=DEV_META_PHONE_NUMBER_ID))
    assert result.provider_message_id.startswith("wamid.")
    [stored] = emu.messages("meta")
    assert stored.id == result.provider_message_id
    assert stored.template == {
        "name": "receipt",
        "language": "pt_BR",
        "parameters": ["00000120251121000001", "Exemplo"],
    }

    callbacks = await receiver.wait_for(2, path="/v1/webhooks/meta")
    updates = parse_all(provider, callbacks)
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (result.provider_message_id, "sent"),
        (result.provider_message_id, "delivered"),
    ]
    assert all(u.at is not None for u in updates)
    callback = callbacks[0]
    tampered = callback.body.replace(b'"sent"', b'"read"')
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(callback.url, callback.headers, tampered)
    wrong_secret = make_meta(emu, app_secret="another-secret")
    with pytest.raises(WebhookRejected):
        wrong_secret.parse_webhook(callback.url, callback.headers, callback.body)
    await wrong_secret.aclose()


@pytest.mark.integration
async def test_meta_plain_text_message(emu: RunningEmulators) -> None:
    provider = make_meta(emu)
    try:
        await provider.send(whatsapp(sender=DEV_META_PHONE_NUMBER_ID, template=None))
    finally:
        await provider.aclose()
    [stored] = emu.messages("meta")
    assert stored.request["type"] == "text"
    assert stored.text is not None
    assert stored.text.startswith("Protocolo")


def test_meta_webhook_parsing_and_subscription_handshake() -> None:
    provider = MetaWhatsAppProvider(access_token="t", app_secret="s", base_url="http://127.0.0.1:9")
    statuses = [
        {"id": "wamid.A", "status": "read", "timestamp": "1763730000"},
        {
            "id": "wamid.B",
            "status": "failed",
            "timestamp": "1763730001",
            "errors": [{"code": 131047, "title": "Re-engagement message"}],
        },
        {"id": "wamid.C", "status": "deleted", "timestamp": "1763730002"},
    ]
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": [{"field": "messages", "value": {"statuses": statuses}}]}
            ],
        }
    ).encode()
    updates = provider.parse_webhook("", {"X-Hub-Signature-256": meta_signature("s", body)}, body)
    assert updates == [
        StatusUpdate("wamid.A", "read", datetime.fromtimestamp(1763730000, UTC)),
        StatusUpdate("wamid.B", "failed", datetime.fromtimestamp(1763730001, UTC), "131047"),
    ]
    other = json.dumps({"object": "page", "entry": []}).encode()
    with pytest.raises(WebhookRejected):
        provider.parse_webhook("", {"X-Hub-Signature-256": meta_signature("s", other)}, other)

    params = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert verify_subscription(params, "vt") == "1158201444"
    assert verify_subscription(params, "other") is None
    assert verify_subscription({**params, "hub.mode": "unsubscribe"}, "vt") is None
    assert verify_subscription({}, "vt") is None


# --- failures, for every HTTP provider ------------------------------------------------------

HTTP_PROVIDERS: list[ProviderName] = ["zenvia", "twilio", "meta"]


def make(name: str, emu: RunningEmulators, receiver: CallbackReceiver, **kw: Any) -> Provider:
    if name == "zenvia":
        return make_zenvia(emu, **kw)
    if name == "twilio":
        return make_twilio(emu, receiver, **kw)
    return make_meta(emu, **kw)


def message_for(name: str) -> OutboundMessage:
    if name == "meta":
        return whatsapp(sender=DEV_META_PHONE_NUMBER_ID)
    if name == "twilio":
        return sms(sender="+5511990000100")
    return sms()


async def send_error(provider: Provider, message: OutboundMessage) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.send(message)
    assert PHONE not in str(caught.value)
    assert PHONE.removeprefix("+") not in caught.value.code
    return caught.value


@pytest.mark.integration
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
async def test_rate_limit_is_retryable_with_retry_after(
    name: ProviderName, emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    provider = make(name, emu, receiver)
    emu.set_fault(name, "rate_limit", count=1, retry_after=3)
    try:
        error = await send_error(provider, message_for(name))
        assert error.retryable
        assert error.retry_after == 3.0
        assert error.code in ("TOO_MANY_REQUESTS", "20429", "130429")
        await provider.send(message_for(name))  # the limit has passed
    finally:
        await provider.aclose()


@pytest.mark.integration
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
async def test_server_errors_and_timeouts_are_retryable(
    name: ProviderName, emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    provider = make(name, emu, receiver, timeout=0.1)
    emu.set_fault(name, "server_error", count=1)
    emu.set_fault(name, "timeout", count=1, seconds=0.2)
    try:
        server_error = await send_error(provider, message_for(name))
        assert server_error.retryable
        assert server_error.retry_after is None
        timeout = await send_error(provider, message_for(name))
        assert (timeout.code, timeout.retryable) == ("timeout", True)
        # The slow provider still sends it: the retry may duplicate (as in production).
        await emu.wait_for_messages(1, provider=name, max_seconds=2)
    finally:
        await provider.aclose()


@pytest.mark.integration
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
async def test_the_service_clients_tell_a_timeout_from_a_refused_connection(
    name: ProviderName, emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    """The clients the service builds (httpx over aiohttp) succeed, time out as "timeout"
    and fail to connect as "connection_error", both retryable."""
    settings = service_settings(
        "postgresql+asyncpg://unused@127.0.0.1:1/unused", emu, 1, provider_timeout_seconds=0.2
    )
    pool = Providers(settings)
    try:
        await make(name, emu, receiver, client=pool.client(name)).send(message_for(name))
        emu.set_fault(name, "timeout", count=1, seconds=1)
        timeout = await send_error(
            make(name, emu, receiver, client=pool.client(name), timeout=0.2), message_for(name)
        )
        assert (timeout.code, timeout.retryable) == ("timeout", True)
        closed = f"http://127.0.0.1:{free_port()}"
        refused = await send_error(
            make(name, emu, receiver, client=pool.client(name), base_url=closed),
            message_for(name),
        )
        assert (refused.code, refused.retryable) == ("connection_error", True)
        await emu.wait_for_messages(2, provider=name, max_seconds=3)  # the slow one lands
    finally:
        await pool.aclose()


@pytest.mark.integration
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
async def test_rejections_and_bad_credentials_are_permanent(
    name: ProviderName, emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    provider = make(name, emu, receiver)
    emu.set_fault(name, "reject", count=1)
    try:
        rejected = await send_error(provider, message_for(name))
        assert not rejected.retryable
        assert rejected.code in ("VALIDATION_ERROR", "21610", "131030")
    finally:
        await provider.aclose()
    credentials = {"zenvia": "api_token", "twilio": "auth_token", "meta": "access_token"}[name]
    unauthorized = make(name, emu, receiver, **{credentials: "wrong"})
    try:
        error = await send_error(unauthorized, message_for(name))
        assert not error.retryable
        assert error.code in ("AUTHENTICATION_ERROR", "20003", "190")
    finally:
        await unauthorized.aclose()
    assert emu.messages() == []


@pytest.mark.integration
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
async def test_undelivered_callback_parses_as_failed(
    name: ProviderName, emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    provider = make(name, emu, receiver)
    emu.set_fault(name, "undelivered", count=1)
    try:
        result = await provider.send(message_for(name))
    finally:
        await provider.aclose()
    updates = parse_all(provider, await receiver.wait_for(2))
    assert [u.status for u in updates] == ["sent", "failed"]
    assert updates[1].provider_message_id == result.provider_message_id
    assert updates[1].error_code in ("UNREACHABLE_DESTINATION", "30003", "131026")


@pytest.mark.integration
@pytest.mark.parametrize("name", HTTP_PROVIDERS)
async def test_connection_refused_is_retryable(
    name: ProviderName, emu: RunningEmulators, receiver: CallbackReceiver
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    provider = make(name, emu, receiver, base_url=closed)
    try:
        error = await send_error(provider, message_for(name))
    finally:
        await provider.aclose()
    assert (error.code, error.retryable) == ("connection_error", True)


@pytest.mark.integration
async def test_unsupported_channel_is_permanent(emu: RunningEmulators) -> None:
    provider = make_meta(emu)
    try:
        error = await send_error(provider, sms())
    finally:
        await provider.aclose()
    assert (error.code, error.retryable) == ("unsupported_channel", False)


def test_retry_after_and_status_mapping() -> None:
    now = datetime(2025, 11, 21, 13, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0.5") == 0.5
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now)
        == 30.0
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert http_status_error(404, None, None).code == "http_404"
    assert not http_status_error(404, None, None).retryable
    assert http_status_error(503, None, "7").retry_after == 7.0
    assert http_status_error(429, "X", None).retryable
    echoed = http_status_error(400, "invalid number +5511990000001", None)
    assert echoed.code == "http_400"


def test_meta_rate_limit_codes_are_retryable_whatever_the_status() -> None:
    from notification_svc.providers.meta import _error

    response = httpx.Response(
        400,
        json={"error": {"code": 131056, "message": "pair rate limit"}},
        headers={"Retry-After": "6"},
    )
    error = _error(response, response.json())
    assert (error.code, error.retryable, error.retry_after) == ("131056", True, 6.0)
    permanent = httpx.Response(400, json={"error": {"code": 132001}})
    assert not _error(permanent, permanent.json()).retryable


# --- SMTP ---------------------------------------------------------------------------------


def email(delivery_id: uuid.UUID | None = None) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery_id or uuid.uuid4(),
        channel="email",
        to="beneficiario@example.org",
        sender="Operadora Exemplo <no-reply@example.org>",
        text="Seu protocolo: 00000120251121000001",
        html="<p>Seu protocolo: <b>00000120251121000001</b></p>",
        subject="Protocolo de atendimento",
        reply_to="ouvidoria@example.org",
        headers={"X-RN623-Protocol": "00000120251121000001"},
    )


def make_smtp(emu: RunningEmulators, **overrides: Any) -> SmtpProvider:
    kwargs: dict[str, Any] = {"host": emu.smtp_host, "port": emu.smtp_port, "timeout": 2.0}
    return SmtpProvider(**(kwargs | overrides))


@pytest.mark.integration
async def test_smtp_sends_a_multipart_message_with_a_deterministic_message_id(
    emu: RunningEmulators,
) -> None:
    provider = make_smtp(emu)
    message = email()
    result = await provider.send(message)
    again = await provider.send(message)  # a resend after a crash
    assert result.provider_message_id == f"<{message.delivery_id}@example.org>"
    assert again.provider_message_id == result.provider_message_id
    first, second = emu.messages("smtp", "email")
    assert first.id == second.id == result.provider_message_id
    assert first.request["content_type"] == "multipart/alternative"
    assert first.sender == "no-reply@example.org"
    assert first.to == ["beneficiario@example.org"]
    assert first.subject == "Protocolo de atendimento"
    assert first.text is not None
    assert "00000120251121000001" in first.text
    assert first.html is not None
    assert "<b>00000120251121000001</b>" in first.html
    assert first.header("Reply-To") == "ouvidoria@example.org"
    assert first.header("X-RN623-Protocol") == "00000120251121000001"
    assert first.header("From") == "Operadora Exemplo <no-reply@example.org>"
    with pytest.raises(WebhookRejected):
        provider.parse_webhook("http://127.0.0.1/", {}, b"{}")
    await provider.aclose()


@pytest.mark.integration
async def test_smtp_errors(emu: RunningEmulators) -> None:
    provider = make_smtp(emu, timeout=0.2, message_id_domain="mail.example.org")
    emu.set_fault("smtp", "server_error", count=1)
    emu.set_fault("smtp", "reject", count=1)
    emu.set_fault("smtp", "timeout", count=1, seconds=0.5)
    temporary = await send_error(provider, email())
    assert (temporary.code, temporary.retryable) == ("smtp_451", True)
    permanent = await send_error(provider, email())
    assert (permanent.code, permanent.retryable) == ("smtp_550", False)
    timeout = await send_error(provider, email())
    assert (timeout.code, timeout.retryable) == ("timeout", True)
    refused = await send_error(make_smtp(emu, port=free_port()), email())
    assert (refused.code, refused.retryable) == ("connection_error", True)
    required_tls = await send_error(make_smtp(emu, starttls="required"), email())
    assert (required_tls.code, required_tls.retryable) == ("smtp_not_supported", False)
    delivery_id = uuid.uuid4()
    result = await provider.send(email(delivery_id))
    assert result.provider_message_id == f"<{delivery_id}@mail.example.org>"
    # A submission account (AUTH) works against the sink too.
    authenticated = make_smtp(emu, username="relay@example.org", password="dev-password")
    await authenticated.send(email())
    # The timed-out one is not there: the client hung up before the reply, so it was never
    # accepted (the sink drops the session, as a real server does).
    assert len(emu.messages("smtp")) == 2


def test_smtp_refuses_reserved_or_broken_headers() -> None:
    provider = SmtpProvider(host="127.0.0.1", port=9)
    base = email()
    for headers in ({"Message-ID": "<x@example.org>"}, {"X-Bad": "a\r\nBcc: x@example.org"}):
        message = OutboundMessage(**{**base.__dict__, "headers": headers})
        with pytest.raises(ProviderError) as caught:
            provider.build(message)
        assert not caught.value.retryable
    plain = provider.build(OutboundMessage(**{**base.__dict__, "html": None}))
    assert plain.get_content_type() == "text/plain"


def accented_email() -> OutboundMessage:
    """An e-mail whose display names, subject and bodies are not ASCII."""
    return OutboundMessage(
        **{
            **email().__dict__,
            "sender": "Operadora Saúde Exemplo <no-reply@example.org>",
            "to": "José da Conceição <beneficiario@example.org>",
            "subject": "Protocolo 00000120251121000001: sua solicitação foi registrada, "
            "prazo de resposta até 28/11/2025 (ouvidoria: ouvidoria@example.org)",
            "text": "Olá, José!\nSua solicitação foi registrada.\n",
            "html": "<p>Olá, José! Sua solicitação foi registrada.</p>",
            "headers": {"X-RN623-Demanda": "Reclamação"},
        }
    )


def test_smtp_writes_accented_text_as_ascii_that_reads_back_the_same() -> None:
    wire = SmtpProvider(host="127.0.0.1", port=9).build(accented_email()).as_bytes()
    assert wire.isascii()
    parsed = message_from_bytes(wire, policy=email_policy.default)
    assert str(parsed["From"]) == "Operadora Saúde Exemplo <no-reply@example.org>"
    assert str(parsed["To"]) == "José da Conceição <beneficiario@example.org>"
    assert str(parsed["Subject"]) == accented_email().subject
    assert str(parsed["X-RN623-Demanda"]) == "Reclamação"
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert text == "Olá, José!\nSua solicitação foi registrada.\n"
    assert html == "<p>Olá, José! Sua solicitação foi registrada.</p>"
    assert all(len(line) <= 78 for line in wire.split(b"\n"))


def test_smtp_splits_a_long_accented_sender_name_into_short_encoded_words() -> None:
    sender = "Operadora de Planos de Saúde Assistência Médica e Odontológica Ltda"
    provider = SmtpProvider(host="127.0.0.1", port=9)
    message = OutboundMessage(
        **{
            **email().__dict__,
            "sender": f"{sender} <no-reply@example.org>",
            "to": 'José <a@example.org>, "Souza, Ana" <b@example.org>',
        }
    )
    wire = provider.build(message).as_bytes()
    words = re.findall(rb"=\?utf-8\?[qb]\?[^?]*\?=", wire)
    assert words
    assert all(len(word) <= 75 for word in words)  # RFC 2047, section 2
    parsed = message_from_bytes(wire, policy=email_policy.default)
    # decoded as RFC 2047 says (the space between adjacent encoded words is not text;
    # the standard library's address parser keeps it, for EmailMessage's output too)
    raw_from = message_from_bytes(wire)["From"]
    assert str(make_header(decode_header(raw_from))) == f"{sender} <no-reply@example.org>"
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        ("José", "a@example.org"),
        ("Souza, Ana", "b@example.org"),
    ]
    for reserved in ("Content-Type", "MIME-Version"):
        with pytest.raises(ProviderError) as caught:
            provider.build(OutboundMessage(**{**email().__dict__, "headers": {reserved: "x"}}))
        assert caught.value.code == "reserved_header"


def test_smtp_builds_an_international_address_for_smtputf8() -> None:
    provider = SmtpProvider(host="127.0.0.1", port=9)
    built = provider.build(OutboundMessage(**{**email().__dict__, "to": "josé@exemplo.com.br"}))
    assert isinstance(built, EmailMessage)  # the policy that writes UTF-8 headers
    assert str(built["To"]) == "josé@exemplo.com.br"
    with pytest.raises(ProviderError) as caught:
        provider.build(OutboundMessage(**{**email().__dict__, "to": "Sem endereço"}))
    assert caught.value.code == "invalid_header"


@pytest.mark.integration
async def test_smtp_sends_accented_text_the_server_reads_back(emu: RunningEmulators) -> None:
    provider = make_smtp(emu)
    await provider.send(accented_email())
    await provider.aclose()
    [received] = emu.messages("smtp", "email")
    assert received.subject == accented_email().subject
    assert received.header("From") == "Operadora Saúde Exemplo <no-reply@example.org>"
    assert received.text is not None
    assert "Olá, José!" in received.text
    assert received.html is not None
    assert "Olá, José!" in received.html


class _SessionCountingHandler:
    """An SMTP server's handler that notes which connection each message came on, and
    optionally drops the connection after each message (a one-message-per-connection
    limit, or an idle timeout firing between messages)."""

    def __init__(self, drop_after_each: bool) -> None:
        self.peers: list[Any] = []
        self.drop_after_each = drop_after_each

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.append(session.peer)
        if self.drop_after_each:
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return "250 2.0.0 accepted"


@contextlib.asynccontextmanager
async def _counting_smtp(
    *, drop_after_each: bool = False, **options: Any
) -> AsyncIterator[tuple[SmtpProvider, _SessionCountingHandler]]:
    """An SMTP server on a free port that notes each message's connection, and an
    adapter of it (``options``: the adapter's own)."""
    handler = _SessionCountingHandler(drop_after_each)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: aiosmtpd.smtp.SMTP(handler, hostname="test", loop=loop), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    provider = SmtpProvider(host="127.0.0.1", port=port, timeout=2.0, starttls="off", **options)
    try:
        yield provider, handler
    finally:
        await provider.aclose()
        server.close()


@pytest.mark.integration
async def test_smtp_reuses_its_connection() -> None:
    async with _counting_smtp() as (provider, handler):
        for _ in range(3):
            await provider.send(email())
    assert len(handler.peers) == 3
    assert len(set(handler.peers)) == 1  # one connection for all three


@pytest.mark.integration
async def test_smtp_replaces_a_connection_the_server_dropped() -> None:
    async with _counting_smtp(drop_after_each=True) as (provider, handler):
        for _ in range(3):
            await provider.send(email())
            await asyncio.sleep(0.2)  # the server hangs up meanwhile
    assert len(handler.peers) == 3  # none lost, none twice
    assert len(set(handler.peers)) == 3  # each on a new connection


@pytest.mark.integration
async def test_smtp_closes_idle_connections_after_their_time() -> None:
    async with _counting_smtp(idle_seconds=0.1) as (provider, handler):
        await provider.send(email())
        await asyncio.sleep(0.3)
        await provider.send(email())
    assert len(set(handler.peers)) == 2
