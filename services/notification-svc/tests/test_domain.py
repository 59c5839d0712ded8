"""Unit tests of notification-svc's pure rules: channel plans, status order, backoff."""

from __future__ import annotations

import random

import pytest

from notification_svc import domain
from notification_svc.domain import Contacts

pytestmark = pytest.mark.unit

ALL = Contacts(email="a@example.org", phone="+5511990000001", whatsapp="+5511990000002")


def test_preferences_come_first_then_the_operator_order() -> None:
    plan = domain.plan_channels(["email"], ["whatsapp", "sms", "email"], ALL)
    assert plan == ("email", "whatsapp", "sms")


def test_channels_without_an_address_are_left_out() -> None:
    plan = domain.plan_channels([], ["whatsapp", "sms", "email"], Contacts(email="a@example.org"))
    assert plan == ("email",)
    assert domain.plan_channels([], ["sms"], Contacts()) == ()


def test_whatsapp_falls_back_to_the_phone_number() -> None:
    contacts = Contacts(phone="+5511990000001")
    assert domain.plan_channels([], ["whatsapp", "sms"], contacts) == ("whatsapp", "sms")
    assert contacts.address("whatsapp") == "+5511990000001"


def test_unknown_channels_and_repeats_are_ignored() -> None:
    assert domain.plan_channels(["fax", "sms", "sms"], ["sms", "email"], ALL) == ("sms", "email")


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        ("sent", "delivered", True),
        ("delivered", "sent", False),
        ("delivered", "read", True),
        ("read", "delivered", False),
        ("sent", "failed", True),
        ("delivered", "failed", False),
        ("failed", "delivered", False),
        ("cancelled", "sent", False),
        ("sending", "sent", True),
    ],
)
def test_status_only_moves_forward(current: str, new: str, moves: bool) -> None:
    assert domain.advances(current, new) is moves


def test_backoff_grows_with_jitter_and_stays_under_the_cap() -> None:
    rng = random.Random(7)
    delays = [domain.retry_delay(n, initial=1.0, maximum=30.0, rng=rng) for n in range(1, 12)]
    assert all(0.5 <= d <= 30.0 for d in delays)
    assert max(delays[6:]) > max(delays[:2])


def test_retry_after_is_never_undercut() -> None:
    rng = random.Random(1)
    for _ in range(100):
        delay = domain.retry_delay(1, initial=1.0, maximum=30.0, retry_after=7.0, rng=rng)
        assert 7.0 <= delay <= 7.7


def test_first_name() -> None:
    assert domain.first_name("maria da silva") == "Maria"
    assert domain.first_name("  ") is None
    assert domain.first_name(None) is None


def test_providers_keep_the_configured_order_and_only_available_ones() -> None:
    configured = {"whatsapp": ("meta", "zenvia", "twilio")}
    assert domain.providers_for("whatsapp", configured, ["twilio", "meta"]) == ("meta", "twilio")
    assert domain.providers_for("sms", configured, ["twilio"]) == ()


def test_each_provider_may_have_its_own_timeout() -> None:
    from notification_svc.settings import NotificationSettings

    settings = NotificationSettings(provider_timeout_seconds=10, provider_timeouts={"smtp": 30})
    assert settings.timeout_of("smtp") == 30
    assert settings.timeout_of("meta") == 10


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+5511991234567", "+5511991234567"),
        ("+551181234567", "+5511981234567"),  # an 8-digit mobile gets its ninth digit
        ("+551132345678", None),  # a landline: no SMS, no WhatsApp
        ("+351912345678", "+351912345678"),  # foreign: as given
        ("+5500912345678", None),  # no such area code
        (None, None),
    ],
)
def test_messaging_number(raw: str | None, expected: str | None) -> None:
    assert domain.messaging_number(raw) == expected


@pytest.mark.parametrize(
    ("status", "beyond"),
    [("queued", False), ("sent", False), ("delivered", True), ("read", True), ("failed", True)],
)
def test_only_statuses_beyond_acceptance_wait_for_the_send_record(
    status: str, beyond: bool
) -> None:
    assert domain.beyond_acceptance(status) is beyond
