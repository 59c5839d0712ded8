"""notification-svc settings (environment variables, see rn623_events.settings).

A provider is used only when its credentials are set; the dev runner sets them to the
local emulators'. Each operator may override the channel order, the providers of each
channel, the senders and the branding (``PUT /v1/operators/{ans}/notification-profile``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from rn623_events.contracts.common import NotificationChannel
from rn623_events.contracts.notifications import ProviderName
from rn623_events.settings import ServiceSettings

DEFAULT_CHANNEL_ORDER: tuple[NotificationChannel, ...] = ("whatsapp", "sms", "email")
DEFAULT_CHANNEL_PROVIDERS: dict[NotificationChannel, tuple[ProviderName, ...]] = {
    "whatsapp": ("meta", "zenvia", "twilio"),
    "sms": ("zenvia", "twilio"),
    "email": ("smtp",),
}
# How long a channel has to prove delivery before the next one is tried. E-mail has no
# delivery callback: SMTP acceptance is all there is, so it never times out.
DEFAULT_DELIVERY_TIMEOUTS: dict[NotificationChannel, float] = {"whatsapp": 300.0, "sms": 600.0}


class NotificationSettings(ServiceSettings):
    """Settings of notification-svc."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = "notification-svc"

    # Channels tried in order when the beneficiary states no preference (CHANNEL_ORDER).
    channel_order: tuple[NotificationChannel, ...] = DEFAULT_CHANNEL_ORDER
    # Providers of each channel, in failover order (CHANNEL_PROVIDERS='{"sms": [...]}').
    channel_providers: dict[NotificationChannel, tuple[ProviderName, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_CHANNEL_PROVIDERS)
    )
    # Seconds a channel has to prove delivery before falling back (DELIVERY_TIMEOUTS).
    delivery_timeouts: dict[NotificationChannel, float] = Field(
        default_factory=lambda: dict(DEFAULT_DELIVERY_TIMEOUTS)
    )

    # Dispatcher: how often it looks for due messages, how many it claims at once, how
    # many provider calls run at the same time, and how long a claim holds (a worker that
    # dies mid-send releases its messages when the lease ends).
    dispatch_interval_seconds: float = Field(default=0.2, gt=0)
    dispatch_batch_size: int = Field(default=200, ge=1, le=5000)
    dispatch_concurrency: int = Field(default=64, ge=1, le=1000)
    dispatch_lease_seconds: float = Field(default=60.0, gt=0)
    # Retries of one provider before failing over to the next: attempts, backoff with
    # full jitter between backoff_initial and backoff_max (a 429's Retry-After wins).
    provider_max_attempts: int = Field(default=4, ge=1, le=20)
    retry_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=120.0, gt=0)
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    # Per-provider overrides of that timeout (PROVIDER_TIMEOUTS='{"smtp": 30}').
    provider_timeouts: dict[ProviderName, float] = Field(default_factory=dict)

    def timeout_of(self, provider: str) -> float:
        """Seconds one call to ``provider`` may take."""
        for name, seconds in self.provider_timeouts.items():
            if name == provider:
                return seconds
        return self.provider_timeout_seconds

    # The fallback timer: how often it looks for channels past their delivery timeout.
    fallback_interval_seconds: float = Field(default=1.0, gt=0)
    gauges_interval_seconds: float = Field(default=30.0, gt=0)

    # Where providers call back: this service's public URL of POST /v1/webhooks
    # (Twilio signs the exact URL it calls, so it must be the public one).
    public_webhook_url: str = "http://127.0.0.1:8003/v1/webhooks"

    # Default senders, used when an operator's profile names none.
    email_from: str = "Atendimento <no-reply@rn623.local>"
    sms_sender: str = "RN623"
    whatsapp_sender: str = "+5511900000000"
    meta_phone_number_id: str = ""

    # SMTP relay.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: Literal["off", "optional", "required"] = "optional"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # SMTP connections kept open and reused; a kept one idle this long is closed
    smtp_max_connections: int = Field(default=8, ge=1, le=200)
    smtp_idle_seconds: float = Field(default=30.0, gt=0)

    # Zenvia v2 (SMS and WhatsApp).
    zenvia_api_url: str = "https://api.zenvia.com"
    zenvia_api_token: SecretStr | None = None
    zenvia_webhook_token: SecretStr | None = None
    # WhatsApp template name -> Zenvia template id (ZENVIA_TEMPLATE_IDS='{"...": "..."}').
    zenvia_template_ids: dict[str, str] = Field(default_factory=dict)

    # Twilio (SMS and WhatsApp).
    twilio_api_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    # WhatsApp template name -> Twilio Content SID (TWILIO_CONTENT_SIDS='{"...": "HX..."}').
    twilio_content_sids: dict[str, str] = Field(default_factory=dict)

    # Meta WhatsApp Cloud API.
    meta_api_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v21.0"
    meta_access_token: SecretStr | None = None
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None

    @field_validator("channel_order")
    @classmethod
    def _distinct_channels(
        cls, value: tuple[NotificationChannel, ...]
    ) -> tuple[NotificationChannel, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("channel_order needs distinct channels")
        return value
