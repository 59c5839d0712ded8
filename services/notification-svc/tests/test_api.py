"""notification-svc's HTTP API over a real socket: notifications with their timelines,
tenant isolation, operator profiles, and provider callbacks that must verify."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from notification_svc.consumers import NotificationHandlers
from notification_svc.dispatcher import Dispatcher
from notification_svc.runtime import Runtime
from notification_svc_testdata import opened, operator, protocol_number
from rn623_devinfra.provider_emulators import RunningEmulators
from rn623_devinfra.waiting import eventually
from rn623_events.clock import ManualClock
from rn623_events.envelope import make_envelope
from rn623_events.registry import Event

pytestmark = pytest.mark.integration

OPERATOR_A, OPERATOR_B = "456789", "567890"
Token = Callable[..., dict[str, str]]


async def _handle(rt: Runtime, clock: ManualClock, *events: Event) -> None:
    handlers = NotificationHandlers(rt).handlers()
    async with rt.uow() as uow:
        for event in events:
            envelope = make_envelope(event, source="protocol-svc", time=clock.now())
            uow.cause = envelope
            await handlers[envelope.type](event, envelope, uow)
        await uow.commit()


async def _delivered_receipt(
    rt: Runtime, clock: ManualClock, api: httpx.AsyncClient, token: Token, ans: str
) -> str:
    number = protocol_number()
    await _handle(rt, clock, operator(ans, at=clock.now()), opened(ans, number, clock.now()))
    await Dispatcher(rt).tick()

    async def delivered() -> bool:
        response = await api.get(
            "/v1/notifications", params={"protocol": number}, headers=token(operators=[ans])
        )
        items = response.json()["items"]
        return bool(items) and items[0]["status"] == "delivered"

    await eventually(delivered, max_seconds=15)
    return number


async def test_a_protocols_notifications_show_the_timeline_and_hide_the_address(
    runtime: Runtime,
    clock: ManualClock,
    api: httpx.AsyncClient,
    emulators: RunningEmulators,
    token: Token,
) -> None:
    number = await _delivered_receipt(runtime, clock, api, token, OPERATOR_A)
    response = await api.get(
        "/v1/notifications",
        params={"protocol": number},
        headers=token(operators=[OPERATOR_A], scopes=["notifications:read"]),
    )
    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert item["purpose"] == "receipt"
    assert number in item["text"]
    (whatsapp,) = item["deliveries"]
    assert whatsapp["channel"] == "whatsapp"
    assert whatsapp["provider"] == "meta"
    assert whatsapp["provider_message_id"]
    assert [e["status"] for e in whatsapp["timeline"]] == ["queued", "sent", "delivered"]
    assert whatsapp["timeline"][-1]["source"] == "webhook"
    assert whatsapp["recipient"] != "+5511990000002"
    assert whatsapp["recipient"].endswith("0002")
    assert "+5511990000002" not in response.text

    one = await api.get(f"/v1/notifications/{item['id']}", headers=token(operators=[OPERATOR_A]))
    assert one.status_code == 200
    assert one.json()["id"] == item["id"]


async def test_another_operators_notifications_are_invisible(
    runtime: Runtime, clock: ManualClock, api: httpx.AsyncClient, token: Token
) -> None:
    number = await _delivered_receipt(runtime, clock, api, token, OPERATOR_A)
    other = token(operators=[OPERATOR_B], scopes=["notifications:read"])
    listed = await api.get("/v1/notifications", params={"protocol": number}, headers=other)
    assert listed.json()["items"] == []
    mine = await api.get(
        "/v1/notifications", params={"protocol": number}, headers=token(operators=[OPERATOR_A])
    )
    notification_id = mine.json()["items"][0]["id"]
    assert (await api.get(f"/v1/notifications/{notification_id}", headers=other)).status_code == 404
    forbidden = await api.get("/v1/notifications", params={"operator": OPERATOR_A}, headers=other)
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/notifications"),
        ("GET", "/v1/notifications/00000000-0000-0000-0000-000000000000"),
        ("GET", f"/v1/operators/{OPERATOR_A}/notification-profile"),
        ("PUT", f"/v1/operators/{OPERATOR_A}/notification-profile"),
    ],
)
async def test_every_endpoint_needs_a_token(
    api: httpx.AsyncClient, token: Token, method: str, path: str
) -> None:
    assert (await api.request(method, path, json={})).status_code == 401
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert (await api.request(method, path, json={}, headers=bad)).status_code == 401
    wrong_scope = token(operators=[OPERATOR_A], scopes=["protocols:write"])
    assert (await api.request(method, path, json={}, headers=wrong_scope)).status_code == 403


async def test_pagination_walks_every_message_once(
    runtime: Runtime, clock: ManualClock, api: httpx.AsyncClient, token: Token
) -> None:
    ans = "678901"
    await _handle(runtime, clock, operator(ans, at=clock.now()))
    numbers = [protocol_number() for _ in range(5)]
    for number in numbers:
        await _handle(runtime, clock, opened(ans, number, clock.now()))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"operator": ans, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/notifications", params=params, headers=token())).json()
        seen += [item["protocol_number"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(numbers)
    bad = await api.get("/v1/notifications", params={"cursor": "garbage"}, headers=token())
    assert bad.status_code == 400 or bad.status_code == 422


async def test_profile_round_trip_and_field_errors(api: httpx.AsyncClient, token: Token) -> None:
    path = f"/v1/operators/{OPERATOR_A}/notification-profile"
    body = {
        "branding": {"display_name": "Exemplo", "ouvidoria_phone": "0800 000 0000"},
        "senders": {"email": "Exemplo <nao-responda@example.org>", "sms": "EXEMPLO"},
        "channel_order": ["sms", "email"],
        "channel_providers": {"sms": ["twilio", "zenvia"]},
        "delivery_timeouts": {"sms": 120},
    }
    put = await api.put(path, json=body, headers=token(operators=[OPERATOR_A]))
    assert put.status_code == 200, put.text
    assert put.json()["revision"] >= 1
    got = await api.get(path, headers=token(operators=[OPERATOR_A]))
    assert got.json()["channel_order"] == ["sms", "email"]

    wrong = await api.put(
        path,
        json={"channel_providers": {"email": ["twilio"]}},
        headers=token(operators=[OPERATOR_A]),
    )
    assert wrong.status_code == 422
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert "channel_providers" in json.dumps(wrong.json())
    color = await api.put(
        path, json={"branding": {"primary_color": "red"}}, headers=token(operators=[OPERATOR_A])
    )
    assert color.status_code == 422
    assert "primary_color" in json.dumps(color.json())
    other = await api.put(path, json=body, headers=token(operators=[OPERATOR_B]))
    assert other.status_code == 403


async def test_the_profile_changes_the_channels_and_the_sender(
    runtime: Runtime,
    clock: ManualClock,
    api: httpx.AsyncClient,
    emulators: RunningEmulators,
    token: Token,
) -> None:
    ans = "789012"
    path = f"/v1/operators/{ans}/notification-profile"
    body = {
        "senders": {"sms": "EXEMPLO"},
        "channel_order": ["sms"],
        "channel_providers": {"sms": ["twilio"]},
    }
    assert (await api.put(path, json=body, headers=token())).status_code == 200
    number = protocol_number()
    await _handle(runtime, clock, operator(ans, at=clock.now()), opened(ans, number, clock.now()))
    await Dispatcher(runtime).tick()
    (sms,) = [m for m in emulators.messages(provider="twilio") if number in (m.text or "")]
    assert sms.channel == "sms"
    assert sms.sender == "EXEMPLO"


async def test_callbacks_that_do_not_verify_are_refused(api: httpx.AsyncClient) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    unsigned = await api.post("/v1/webhooks/meta", content=body)
    assert unsigned.status_code == 401
    forged = hmac.new(b"not-the-app-secret", body, hashlib.sha256).hexdigest()
    wrong = await api.post(
        "/v1/webhooks/meta", content=body, headers={"X-Hub-Signature-256": f"sha256={forged}"}
    )
    assert wrong.status_code == 401
    twilio = await api.post(
        "/v1/webhooks/twilio",
        data={"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
    )
    assert twilio.status_code == 401
    zenvia = await api.post("/v1/webhooks/zenvia", json={"type": "MESSAGE_STATUS"})
    assert zenvia.status_code == 401
    unknown = await api.post("/v1/webhooks/sinch", json={})
    assert unknown.status_code in (404, 422)


async def test_meta_subscription_handshake(api: httpx.AsyncClient) -> None:
    ok = await api.get(
        "/v1/webhooks/meta",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "dev-meta-verify-token",
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await api.get(
        "/v1/webhooks/meta",
        params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403
