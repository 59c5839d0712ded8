"""The provider emulators on real loopback servers: formats, credentials, callbacks, faults."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email import policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
import pytest_asyncio

from rn623_devinfra.provider_emulators import (
    DEV_META_ACCESS_TOKEN,
    DEV_META_APP_SECRET,
    DEV_META_PHONE_NUMBER_ID,
    DEV_TWILIO_ACCOUNT_SID,
    DEV_TWILIO_AUTH_TOKEN,
    DEV_ZENVIA_API_TOKEN,
    DEV_ZENVIA_WEBHOOK_TOKEN,
    CallbackReceiver,
    EmulatorClient,
    EmulatorConfig,
    ReceivedRequest,
    RunningEmulators,
    running_callback_receiver,
    running_emulators,
)
from rn623_devinfra.provider_emulators.cli import build_parser, config_from_args, main
from rn623_devinfra.provider_emulators.config import require_loopback

pytestmark = pytest.mark.integration

PHONE = "+5511990000001"
OTHER_PHONE = "+5511990000002"
TWILIO_SENDER = "+5511990000100"


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    """A webhook stand-in that records every callback."""
    async with running_callback_receiver() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def emulators(receiver: CallbackReceiver) -> AsyncIterator[RunningEmulators]:
    """The emulators, calling back into ``receiver``."""
    config = EmulatorConfig(
        zenvia_webhook_url=f"{receiver.url}/zenvia",
        meta_webhook_url=f"{receiver.url}/meta",
        delivered_delay=0.05,
        callback_backoff=0.01,
    )
    async with running_emulators(config) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def emu(
    emulators: RunningEmulators, receiver: CallbackReceiver
) -> AsyncIterator[RunningEmulators]:
    """The shared emulators, reset before and after each test."""
    await emulators.reset()
    receiver.requests.clear()
    yield emulators
    await emulators.reset()
    receiver.requests.clear()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


# --- requests in each provider's real format --------------------------------------------


async def zenvia_send(
    http: httpx.AsyncClient,
    emu: RunningEmulators,
    *,
    channel: str = "sms",
    token: str = DEV_ZENVIA_API_TOKEN,
    body: dict[str, Any] | None = None,
    read_timeout: float = 5.0,
) -> httpx.Response:
    return await http.post(
        f"{emu.zenvia_base_url}/v2/channels/{channel}/messages",
        headers={"X-API-TOKEN": token},
        json=body
        or {
            "from": "rn623-dev",
            "to": PHONE.removeprefix("+"),
            "contents": [{"type": "text", "text": "Protocolo 00000120251121000001"}],
            "externalId": "delivery-1",
        },
        timeout=read_timeout,
    )


async def twilio_send(
    http: httpx.AsyncClient,
    emu: RunningEmulators,
    *,
    form: dict[str, str] | None = None,
    auth: tuple[str, str] = (DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN),
    callback: str | None = None,
    read_timeout: float = 5.0,
) -> httpx.Response:
    data = form or {"To": PHONE, "From": TWILIO_SENDER, "Body": "Protocolo 1"}
    if callback:
        data = {**data, "StatusCallback": callback}
    return await http.post(
        f"{emu.twilio_base_url}/2010-04-01/Accounts/{DEV_TWILIO_ACCOUNT_SID}/Messages.json",
        data=data,
        auth=auth,
        timeout=read_timeout,
    )


async def meta_send(
    http: httpx.AsyncClient,
    emu: RunningEmulators,
    *,
    token: str = DEV_META_ACCESS_TOKEN,
    phone_number_id: str = DEV_META_PHONE_NUMBER_ID,
    body: dict[str, Any] | None = None,
    read_timeout: float = 5.0,
) -> httpx.Response:
    return await http.post(
        f"{emu.meta_base_url}/v21.0/{phone_number_id}/messages",
        headers={"Authorization": f"Bearer {token}"},
        json=body
        or {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": PHONE,
            "type": "template",
            "template": {
                "name": "receipt",
                "language": {"code": "pt_BR"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "000001"}]}
                ],
            },
        },
        timeout=read_timeout,
    )


def twilio_signature(url: str, params: dict[str, str]) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(DEV_TWILIO_AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# --- Zenvia -------------------------------------------------------------------------------


async def test_zenvia_sms_is_accepted_and_called_back(
    emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    response = await zenvia_send(http, emu)
    assert response.status_code == 200
    body = response.json()
    message_id = body["id"]
    assert uuid.UUID(message_id)
    assert body["direction"] == "OUT"
    assert body["externalId"] == "delivery-1"

    callbacks = await receiver.wait_for(2, path="/zenvia")
    events = [c.json() for c in callbacks]
    assert [e["messageStatus"]["code"] for e in events] == ["SENT", "DELIVERED"]
    for callback, event in zip(callbacks, events, strict=True):
        assert callback.headers["x-zenvia-webhook-token"] == DEV_ZENVIA_WEBHOOK_TOKEN
        assert event["type"] == "MESSAGE_STATUS"
        assert event["messageId"] == message_id
        assert event["externalId"] == "delivery-1"
        assert event["channel"] == "sms"
    [stored] = emu.messages("zenvia", "sms")
    assert stored.to == [PHONE.removeprefix("+")]
    assert stored.text == "Protocolo 00000120251121000001"
    await emu.wait_for_callbacks()
    assert stored.status == "delivered"
    assert [c.ok for c in stored.callbacks] == [True, True]


async def test_zenvia_whatsapp_template(
    emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    body = {
        "from": "5511990000100",
        "to": "5511990000001",
        "contents": [{"type": "template", "templateId": "tpl-1", "fields": {"1": "000001"}}],
    }
    response = await zenvia_send(http, emu, channel="whatsapp", body=body)
    assert response.status_code == 200, response.text
    [stored] = emu.messages("zenvia", "whatsapp")
    assert stored.template == {"id": "tpl-1", "fields": {"1": "000001"}}
    assert [c.json()["channel"] for c in await receiver.wait_for(2)] == ["whatsapp"] * 2


async def test_zenvia_rejects_bad_credentials_and_bad_requests(
    emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    response = await zenvia_send(http, emu, token="wrong")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_ERROR"
    missing = await http.post(f"{emu.zenvia_base_url}/v2/channels/sms/messages", json={})
    assert missing.status_code == 401

    invalid = await zenvia_send(
        http, emu, body={"from": "x", "to": PHONE, "contents": [{"type": "text", "text": "t"}]}
    )
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "VALIDATION_ERROR"
    assert invalid.json()["details"][0]["path"] == "to"
    template_on_sms = await zenvia_send(
        http,
        emu,
        body={"from": "x", "to": "5511990000001", "contents": [{"type": "template"}]},
    )
    assert template_on_sms.status_code == 400
    unknown_channel = await zenvia_send(http, emu, channel="pigeon")
    assert unknown_channel.status_code == 404
    assert emu.messages() == []
    assert emu.request_count("zenvia") == 5


# --- Twilio -------------------------------------------------------------------------------


async def test_twilio_sms_is_accepted_and_calls_back_signed(
    emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    callback_url = f"{receiver.url}/twilio/status?tenant=000001"
    response = await twilio_send(http, emu, callback=callback_url)
    assert response.status_code == 201
    resource = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])
    assert resource["status"] == "queued"
    assert resource["account_sid"] == DEV_TWILIO_ACCOUNT_SID

    callbacks = await receiver.wait_for(2, path="/twilio/status")
    forms = [c.form() for c in callbacks]
    assert [f["MessageStatus"] for f in forms] == ["sent", "delivered"]
    for callback, form in zip(callbacks, forms, strict=True):
        assert callback.url == callback_url
        assert callback.headers["x-twilio-signature"] == twilio_signature(callback_url, form)
        assert form["MessageSid"] == resource["sid"]
        assert form["AccountSid"] == DEV_TWILIO_ACCOUNT_SID
        assert "ErrorCode" not in form


async def test_twilio_whatsapp_content_template(
    emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    form = {
        "To": f"whatsapp:{PHONE}",
        "From": f"whatsapp:{TWILIO_SENDER}",
        "ContentSid": "HX" + "ab" * 16,
        "ContentVariables": '{"1": "000001"}',
    }
    response = await twilio_send(http, emu, form=form)
    assert response.status_code == 201, response.text
    [stored] = emu.messages("twilio", "whatsapp")
    assert stored.template == {"content_sid": form["ContentSid"], "variables": {"1": "000001"}}
    mixed = await twilio_send(
        http, emu, form={"To": f"whatsapp:{PHONE}", "From": TWILIO_SENDER, "Body": "x"}
    )
    assert mixed.status_code == 400
    assert mixed.json()["code"] == 21910


async def test_twilio_rejects_bad_credentials_and_bad_requests(
    emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    wrong = await twilio_send(http, emu, auth=(DEV_TWILIO_ACCOUNT_SID, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["code"] == 20003
    other_account = await http.post(
        f"{emu.twilio_base_url}/2010-04-01/Accounts/AC{'f' * 32}/Messages.json",
        data={"To": PHONE, "From": TWILIO_SENDER, "Body": "x"},
        auth=(DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN),
    )
    assert other_account.status_code == 401

    no_to = await twilio_send(http, emu, form={"From": TWILIO_SENDER, "Body": "x"})
    assert (no_to.status_code, no_to.json()["code"]) == (400, 21604)
    bad_to = await twilio_send(http, emu, form={"To": "11", "From": TWILIO_SENDER, "Body": "x"})
    assert (bad_to.status_code, bad_to.json()["code"]) == (400, 21211)
    no_body = await twilio_send(http, emu, form={"To": PHONE, "From": TWILIO_SENDER})
    assert (no_body.status_code, no_body.json()["code"]) == (400, 21602)
    assert emu.messages() == []


# --- Meta ---------------------------------------------------------------------------------


async def test_meta_template_is_accepted_and_calls_back_signed(
    emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    response = await meta_send(http, emu)
    assert response.status_code == 200, response.text
    body = response.json()
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert body["contacts"] == [{"input": PHONE, "wa_id": PHONE.removeprefix("+")}]

    callbacks = await receiver.wait_for(2, path="/meta")
    statuses = []
    for callback in callbacks:
        expected = hmac.new(DEV_META_APP_SECRET.encode(), callback.body, hashlib.sha256)
        assert callback.headers["x-hub-signature-256"] == "sha256=" + expected.hexdigest()
        notification = callback.json()
        assert notification["object"] == "whatsapp_business_account"
        [change] = notification["entry"][0]["changes"]
        assert change["field"] == "messages"
        assert change["value"]["metadata"]["phone_number_id"] == DEV_META_PHONE_NUMBER_ID
        [status] = change["value"]["statuses"]
        assert status["id"] == wamid
        assert status["timestamp"].isdigit()
        statuses.append(status["status"])
    assert statuses == ["sent", "delivered"]
    [stored] = emu.messages("meta")
    assert stored.template == {"name": "receipt", "language": "pt_BR", "parameters": ["000001"]}


async def test_meta_rejects_bad_credentials_and_bad_requests(
    emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    wrong = await meta_send(http, emu, token="wrong")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == 190
    unknown_phone = await meta_send(http, emu, phone_number_id="999")
    assert unknown_phone.status_code == 400
    assert unknown_phone.json()["error"]["code"] == 100
    no_product = await meta_send(http, emu, body={"to": PHONE, "type": "text"})
    assert no_product.status_code == 400
    assert no_product.json()["error"]["code"] == 100
    no_text = await meta_send(
        http, emu, body={"messaging_product": "whatsapp", "to": PHONE, "type": "text"}
    )
    assert no_text.status_code == 400
    assert emu.messages() == []
    assert emu.request_count("meta") == 4


# --- faults -------------------------------------------------------------------------------

Sender = Callable[..., Awaitable[httpx.Response]]
SENDERS: dict[str, Sender] = {"zenvia": zenvia_send, "twilio": twilio_send, "meta": meta_send}
CHANNELS = {"zenvia": "sms", "twilio": "sms", "meta": "whatsapp"}


def error_code(provider: str, response: httpx.Response) -> object:
    body = response.json()
    return body["error"]["code"] if provider == "meta" else body["code"]


@pytest.mark.parametrize("provider", ["zenvia", "twilio", "meta"])
async def test_rate_limit_fault(
    provider: Any, emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    emu.set_fault(provider, "rate_limit", count=1, retry_after=2)
    limited = await SENDERS[provider](http, emu)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert error_code(provider, limited) in ("TOO_MANY_REQUESTS", 20429, 130429)
    assert (await SENDERS[provider](http, emu)).status_code in (200, 201)
    assert len(emu.messages(provider)) == 1
    assert emu.request_count(provider) == 2


@pytest.mark.parametrize("provider", ["zenvia", "twilio", "meta"])
async def test_server_error_and_reject_faults(
    provider: Any, emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    emu.set_fault(provider, "server_error", count=1)
    emu.set_fault(provider, "reject", count=1)
    failed = await SENDERS[provider](http, emu)
    assert failed.status_code == 500
    assert error_code(provider, failed) in ("INTERNAL_ERROR", 20500, 131000)
    rejected = await SENDERS[provider](http, emu)
    assert rejected.status_code == 400
    assert error_code(provider, rejected) in ("VALIDATION_ERROR", 21610, 131030)
    assert (await SENDERS[provider](http, emu)).status_code in (200, 201)


@pytest.mark.parametrize("provider", ["zenvia", "twilio", "meta"])
async def test_timeout_fault_holds_the_response(
    provider: Any, emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    emu.set_fault(provider, "timeout", count=1, seconds=0.25)
    with pytest.raises(httpx.ReadTimeout):
        await SENDERS[provider](http, emu, read_timeout=0.05)
    # A slow provider still sends the message once it gets to it.
    await emu.wait_for_messages(1, provider=provider, max_seconds=2)
    started = time.monotonic()
    assert (await SENDERS[provider](http, emu)).status_code in (200, 201)
    assert time.monotonic() - started < 0.2


async def callbacks_of(
    provider: str, receiver: CallbackReceiver, count: int, max_seconds: float = 5.0
) -> list[ReceivedRequest]:
    path = "/twilio/status" if provider == "twilio" else f"/{provider}"
    return await receiver.wait_for(count, path=path, max_seconds=max_seconds)


def callback_status(provider: str, callback: ReceivedRequest) -> str:
    if provider == "twilio":
        return callback.form()["MessageStatus"]
    if provider == "zenvia":
        code: str = callback.json()["messageStatus"]["code"]
        return code
    status: str = callback.json()["entry"][0]["changes"][0]["value"]["statuses"][0]["status"]
    return status


@pytest.mark.parametrize("provider", ["zenvia", "twilio", "meta"])
async def test_callback_faults(
    provider: Any, emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    send = SENDERS[provider]
    kwargs = {"callback": f"{receiver.url}/twilio/status"} if provider == "twilio" else {}

    emu.set_fault(provider, "no_callback", count=1)
    assert (await send(http, emu, **kwargs)).status_code in (200, 201)
    await emu.wait_for_callbacks()
    assert receiver.requests == []

    emu.set_fault(provider, "undelivered", count=1)
    assert (await send(http, emu, **kwargs)).status_code in (200, 201)
    failed = await callbacks_of(provider, receiver, 2)
    expected_failure = {"zenvia": "NOT_DELIVERED", "twilio": "undelivered", "meta": "failed"}
    assert callback_status(provider, failed[1]) == expected_failure[provider]
    if provider == "twilio":
        assert failed[1].form()["ErrorCode"] == "30003"
    if provider == "meta":
        status = failed[1].json()["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert status["errors"][0]["code"] == 131026
    receiver.requests.clear()

    emu.set_fault(provider, "late_callback", count=1, seconds=0.25)
    started = time.monotonic()
    assert (await send(http, emu, **kwargs)).status_code in (200, 201)
    await callbacks_of(provider, receiver, 1)
    late = await callbacks_of(provider, receiver, 2)
    assert time.monotonic() - started >= 0.25
    assert callback_status(provider, late[1]).lower() == "delivered"


async def test_fault_scope_by_channel_and_until_cleared(
    emu: RunningEmulators, http: httpx.AsyncClient
) -> None:
    emu.set_fault("twilio", "server_error", channel="whatsapp")
    assert (await twilio_send(http, emu)).status_code == 201  # sms is not affected
    whatsapp = {"To": f"whatsapp:{PHONE}", "From": f"whatsapp:{TWILIO_SENDER}", "Body": "x"}
    for _ in range(3):
        assert (await twilio_send(http, emu, form=whatsapp)).status_code == 500
    emu.clear_faults()
    assert (await twilio_send(http, emu, form=whatsapp)).status_code == 201


async def test_fault_control_api(emu: RunningEmulators, http: httpx.AsyncClient) -> None:
    created = await http.post(
        f"{emu.http_url}/_emulator/faults",
        json={"provider": "meta", "channel": None, "mode": "reject", "count": 2},
    )
    assert created.status_code == 201
    assert created.json()["count"] == 2
    listed = await http.get(f"{emu.http_url}/_emulator/faults")
    assert [f["mode"] for f in listed.json()] == ["reject"]
    assert (await meta_send(http, emu)).status_code == 400
    cleared = await http.delete(f"{emu.http_url}/_emulator/faults")
    assert cleared.status_code == 204
    assert (await meta_send(http, emu)).status_code == 200

    bad_mode = await http.post(
        f"{emu.http_url}/_emulator/faults", json={"provider": "meta", "mode": "explode"}
    )
    assert bad_mode.status_code == 422
    smtp_callback = await http.post(
        f"{emu.http_url}/_emulator/faults", json={"provider": "smtp", "mode": "no_callback"}
    )
    assert smtp_callback.status_code == 422


async def test_callbacks_are_retried_while_the_receiver_fails(
    emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    receiver.fail_next(2, status=503)
    assert (await meta_send(http, emu)).status_code == 200
    callbacks = await receiver.wait_for(4, path="/meta")  # 2 failures, then sent, delivered
    assert [callback_status("meta", c) for c in callbacks] == ["sent"] * 3 + ["delivered"]
    await emu.wait_for_callbacks()
    [stored] = emu.messages("meta")
    assert [(c.status, c.attempts, c.ok) for c in stored.callbacks] == [
        ("sent", 3, True),
        ("delivered", 1, True),
    ]


async def test_callbacks_are_retried_while_the_receiver_is_down(http: httpx.AsyncClient) -> None:
    config = EmulatorConfig(callback_backoff=0.05, callback_attempts=6)
    async with running_emulators(config) as emu:
        async with running_callback_receiver() as probe:
            url = f"{probe.url}/twilio/status"
        # The receiver is gone: its port refuses connections until it comes back.
        port = int(probe.url.rsplit(":", 1)[1])
        assert (await twilio_send(http, emu, callback=url)).status_code == 201
        async with running_callback_receiver(port=port) as back:
            callbacks = await back.wait_for(2, max_seconds=5)
        assert [c.form()["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
        assert emu.messages()[0].callbacks[0].attempts > 1


# --- SMTP sink, messages API, inbox --------------------------------------------------------


def email_message(subject: str = "Protocolo <000001>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Operadora Exemplo <no-reply@example.org>"
    message["To"] = "beneficiario@example.org"
    message["Subject"] = subject
    message["Message-ID"] = "<delivery-1@example.org>"
    message.set_content("Seu protocolo: 000001")
    message.add_alternative("<p>Seu protocolo: <b>000001</b></p>", subtype="html")
    return message


async def test_smtp_sink_stores_the_message(emu: RunningEmulators, http: httpx.AsyncClient) -> None:
    await aiosmtplib.send(email_message(), hostname=emu.smtp_host, port=emu.smtp_port, timeout=5)
    [stored] = emu.messages("smtp", "email")
    assert stored.to == ["beneficiario@example.org"]
    assert stored.sender == "no-reply@example.org"
    assert stored.subject == "Protocolo <000001>"
    assert stored.id == "<delivery-1@example.org>"
    assert stored.text is not None
    assert stored.text.strip() == "Seu protocolo: 000001"
    assert stored.html is not None
    assert "<b>000001</b>" in stored.html
    assert stored.request["content_type"] == "multipart/alternative"

    listed = (await http.get(f"{emu.http_url}/_emulator/messages?provider=smtp")).json()
    [message] = listed["messages"]
    assert message["subject"] == "Protocolo <000001>"
    assert message["received_at"]
    assert listed["request_counts"]["smtp"] == 1

    page = await http.get(f"{emu.http_url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Protocolo &lt;000001&gt;" in page.text
    assert "Protocolo <000001>" not in page.text


@pytest.mark.parametrize("transfer", ["quoted-printable", "base64"])
async def test_smtp_sink_reads_what_the_standard_parser_reads(
    emu: RunningEmulators, transfer: str
) -> None:
    """Accents, encoded words, folded headers and encoded bodies come out as policy.default
    reads them (the sink parses with compat32 for speed)."""
    message = EmailMessage()
    message["From"] = "Operadora Saúde Exemplo <no-reply@example.org>"
    message["To"] = "beneficiario@example.org"
    message["Subject"] = "Comprovante de atendimento — protocolo 20261124000001 " + "ç" * 60
    message["Message-ID"] = "<delivery-2@example.org>"
    message.set_content("Olá! Sua solicitação foi registrada.\n", cte=transfer)
    message.add_alternative(
        "<p>Olá! Solicitação <b>registrada</b>.</p>\n", subtype="html", cte=transfer
    )
    raw = message.as_bytes(policy=policy.SMTP)  # as it goes on the wire
    await aiosmtplib.send(message, hostname=emu.smtp_host, port=emu.smtp_port, timeout=5)
    [stored] = emu.messages("smtp", "email")

    expected = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(expected, EmailMessage)
    plain = expected.get_body(preferencelist=("plain",))
    html = expected.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert stored.text == plain.get_content()
    assert stored.html == html.get_content()
    assert stored.subject == str(expected["Subject"])
    assert stored.id == "<delivery-2@example.org>"
    sent_headers = [(key, str(value)) for key, value in expected.items()]
    assert stored.headers == sent_headers


async def test_smtp_sink_reads_a_body_of_an_unknown_charset_as_utf8(
    emu: RunningEmulators,
) -> None:
    raw = (
        b"From: no-reply@example.org\r\nTo: beneficiario@example.org\r\n"
        b"Subject: Protocolo\r\nMessage-ID: <delivery-3@example.org>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nOl\xc3\xa1, protocolo 000003\r\n"
    )
    await aiosmtplib.send(
        raw,
        sender="no-reply@example.org",
        recipients=["beneficiario@example.org"],
        hostname=emu.smtp_host,
        port=emu.smtp_port,
        timeout=5,
    )
    [stored] = emu.messages("smtp", "email")
    assert stored.text == "Olá, protocolo 000003\r\n"


async def test_smtp_faults(emu: RunningEmulators) -> None:
    emu.set_fault("smtp", "server_error", count=1)
    emu.set_fault("smtp", "reject", count=1)
    with pytest.raises(aiosmtplib.SMTPDataError) as temporary:
        await aiosmtplib.send(email_message(), hostname=emu.smtp_host, port=emu.smtp_port)
    assert temporary.value.code == 451
    with pytest.raises(aiosmtplib.SMTPDataError) as permanent:
        await aiosmtplib.send(email_message(), hostname=emu.smtp_host, port=emu.smtp_port)
    assert permanent.value.code == 550
    assert emu.messages() == []
    assert emu.request_count("smtp") == 2


async def test_messages_api_and_inbox_list_everything_newest_first(
    emu: RunningEmulators, receiver: CallbackReceiver, http: httpx.AsyncClient
) -> None:
    await zenvia_send(
        http,
        emu,
        body={
            "from": "rn623-dev",
            "to": "5511990000001",
            "contents": [{"type": "text", "text": "<script>alert(1)</script>"}],
        },
    )
    await twilio_send(http, emu)
    await meta_send(http, emu)
    await aiosmtplib.send(email_message("Resposta"), hostname=emu.smtp_host, port=emu.smtp_port)

    snapshot = (await http.get(f"{emu.http_url}/_emulator/messages")).json()
    assert [m["provider"] for m in snapshot["messages"]] == ["zenvia", "twilio", "meta", "smtp"]
    assert snapshot["request_counts"] == {"zenvia": 1, "twilio": 1, "meta": 1, "smtp": 1}
    whatsapp = (await http.get(f"{emu.http_url}/_emulator/messages?channel=whatsapp")).json()
    assert [m["provider"] for m in whatsapp["messages"]] == ["meta"]

    page = (await http.get(f"{emu.http_url}/")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert page.index("Resposta") < page.index("receipt") < page.index("&lt;script&gt;")

    reset = await http.post(f"{emu.http_url}/_emulator/reset")
    assert reset.status_code == 204
    assert (await http.get(f"{emu.http_url}/_emulator/messages")).json()["messages"] == []


async def test_emulator_client(emu: RunningEmulators, http: httpx.AsyncClient) -> None:
    client = EmulatorClient(emu.http_url)
    try:
        fault = await client.set_fault("zenvia", "reject", channel="sms", count=1)
        assert fault["mode"] == "reject"
        assert (await zenvia_send(http, emu)).status_code == 400
        assert (await zenvia_send(http, emu)).status_code == 200
        assert len(await client.messages("zenvia")) == 1
        await client.set_fault("zenvia", "reject")
        await client.clear_faults("zenvia")
        assert (await client.snapshot())["request_counts"]["zenvia"] == 2
        await client.reset()
        assert await client.messages() == []
    finally:
        await client.aclose()


def test_cli_defaults_and_loopback_only() -> None:
    args = build_parser().parse_args(["--zenvia-webhook", "", "--http-port", "18025"])
    config = config_from_args(args)
    assert args.host == "127.0.0.1"
    assert args.http_port == 18025
    assert args.smtp_port == 1025
    assert config.zenvia_webhook_url is None
    assert config.meta_webhook_url == "http://127.0.0.1:8003/v1/webhooks/meta"
    assert config.twilio_account_sid == DEV_TWILIO_ACCOUNT_SID
    assert require_loopback("127.0.0.1") == "127.0.0.1"
    with pytest.raises(ValueError, match="loopback"):
        require_loopback("0.0.0.0")
    with pytest.raises(SystemExit):
        main(["--host", "0.0.0.0"])
