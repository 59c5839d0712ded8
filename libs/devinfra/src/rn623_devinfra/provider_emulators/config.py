"""What the emulators accept and where they send callbacks, with development defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEV_TWILIO_ACCOUNT_SID = "AC" + "0" * 31 + "1"
"""Account SID the Twilio emulator accepts by default (``AC`` + 32 hex digits)."""
DEV_TWILIO_AUTH_TOKEN = "dev-twilio-auth-token"  # noqa: S105 - development default
"""Auth token of the Twilio emulator (basic auth password and callback signing key)."""
DEV_ZENVIA_API_TOKEN = "dev-zenvia-api-token"  # noqa: S105 - development default
"""``X-API-TOKEN`` the Zenvia emulator accepts by default."""
DEV_ZENVIA_WEBHOOK_TOKEN = "dev-zenvia-webhook-token"  # noqa: S105 - development default
"""Token the Zenvia emulator sends in ``X-Zenvia-Webhook-Token`` with each callback."""
DEV_META_ACCESS_TOKEN = "dev-meta-access-token"  # noqa: S105 - development default
"""Bearer token the Meta emulator accepts by default."""
DEV_META_APP_SECRET = "dev-meta-app-secret"  # noqa: S105 - development default
"""App secret the Meta emulator signs callbacks with (``X-Hub-Signature-256``)."""
DEV_META_PHONE_NUMBER_ID = "100000000000001"
"""The only phone number id the Meta emulator knows by default."""
DEV_META_WABA_ID = "200000000000001"
"""WhatsApp Business Account id the Meta emulator puts in its callbacks."""
DEV_META_DISPLAY_PHONE_NUMBER = "5511990000000"
"""Display number of the emulated Meta business phone (obviously fake)."""

DEV_HTTP_PORT = 8025
"""Default HTTP port of the emulators in local runs (CLI)."""
DEV_SMTP_PORT = 1025
"""Default SMTP port of the sink in local runs (CLI)."""


@dataclass(frozen=True)
class EmulatorConfig:
    """Credentials the emulators check, callback targets, and callback timing."""

    twilio_account_sid: str = DEV_TWILIO_ACCOUNT_SID
    twilio_auth_token: str = DEV_TWILIO_AUTH_TOKEN
    zenvia_api_token: str = DEV_ZENVIA_API_TOKEN
    zenvia_webhook_url: str | None = None
    zenvia_webhook_token: str | None = DEV_ZENVIA_WEBHOOK_TOKEN
    meta_access_token: str = DEV_META_ACCESS_TOKEN
    meta_app_secret: str = DEV_META_APP_SECRET
    meta_phone_number_id: str = DEV_META_PHONE_NUMBER_ID
    meta_waba_id: str = DEV_META_WABA_ID
    meta_display_phone_number: str = DEV_META_DISPLAY_PHONE_NUMBER
    meta_webhook_url: str | None = None
    delivered_delay: float = 0.05
    """Seconds between the ``sent`` and the ``delivered`` callback."""
    callback_attempts: int = 5
    """How many times a callback is POSTed while the receiver is down or answers 5xx/429."""
    callback_backoff: float = 0.05
    """First wait between callback attempts (doubles each time, at most 2 s)."""
    callback_timeout: float = 5.0
    """Timeout of one callback POST."""
    callback_concurrency: int = 16
    """Callback POSTs in flight at once; the others wait their turn."""


def require_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address; the emulators never listen elsewhere."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"the provider emulators bind loopback addresses only, not {host!r}")
    return host


def notification_settings(
    http_url: str, smtp_host: str, smtp_port: int, webhooks: str
) -> dict[str, str]:
    """notification-svc's settings (field names; upper-case them for the environment)
    that point every provider at emulators serving ``http_url`` and ``smtp_port`` with the
    dev credentials, with callbacks signed for ``webhooks`` (its ``/v1/webhooks`` URL)."""
    return {
        "public_webhook_url": webhooks,
        "smtp_host": smtp_host,
        "smtp_port": str(smtp_port),
        "smtp_starttls": "off",
        "zenvia_api_url": f"{http_url}/zenvia",
        "zenvia_api_token": DEV_ZENVIA_API_TOKEN,
        "zenvia_webhook_token": DEV_ZENVIA_WEBHOOK_TOKEN,
        "twilio_api_url": f"{http_url}/twilio",
        "twilio_account_sid": DEV_TWILIO_ACCOUNT_SID,
        "twilio_auth_token": DEV_TWILIO_AUTH_TOKEN,
        "meta_api_url": f"{http_url}/meta",
        "meta_access_token": DEV_META_ACCESS_TOKEN,
        "meta_app_secret": DEV_META_APP_SECRET,
        "meta_phone_number_id": DEV_META_PHONE_NUMBER_ID,
    }
