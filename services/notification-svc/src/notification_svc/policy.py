"""An operator's sending policy: its profile over the service's defaults.

The profile (``PUT /v1/operators/{ans}/notification-profile``) may set the channel
order, the providers of each channel, the delivery timeouts, the senders and the
branding; whatever it leaves out comes from the settings. Only providers whose
credentials are configured are ever chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notification_svc.content import Branding
from notification_svc.domain import providers_for
from notification_svc.settings import NotificationSettings


@dataclass(frozen=True)
class Policy:
    """How one operator's messages are sent."""

    channel_order: tuple[str, ...]
    channel_providers: Mapping[str, tuple[str, ...]]
    delivery_timeouts: Mapping[str, float]
    senders: Mapping[str, str]  # channel or "meta" -> sender identity
    reply_to: str | None = None
    branding_fields: Mapping[str, Any] = field(default_factory=dict)

    def providers(self, channel: str) -> tuple[str, ...]:
        """The providers of ``channel`` in failover order."""
        return self.channel_providers.get(channel, ())

    def timeout(self, channel: str) -> float | None:
        """Seconds ``channel`` has to prove delivery; None: it never falls back."""
        return self.delivery_timeouts.get(channel)

    def sender(self, channel: str, provider: str) -> str:
        """Who the message is from on ``channel`` through ``provider``."""
        if channel == "whatsapp" and provider == "meta":
            return self.senders.get("meta", "")
        return self.senders.get(channel, "")

    def branding(self, ans_registry: str, operator_name: str) -> Branding:
        """The operator's branding for a message's content."""
        return Branding(
            ans_registry=ans_registry, operator_name=operator_name, **self.branding_fields
        )


BRANDING_FIELDS = (
    "display_name", "support_phone", "ouvidoria_phone", "ouvidoria_email", "website",
    "records_url", "logo_url", "primary_color",
)  # fmt: skip


def build_policy(
    settings: NotificationSettings,
    profile: Mapping[str, Any] | None,
    available: Iterable[str],
) -> Policy:
    """The policy of an operator with ``profile`` (None: the defaults)."""
    profile = profile or {}
    usable = tuple(available)
    configured: dict[str, Iterable[str]] = dict(settings.channel_providers.items())
    configured.update(profile.get("channel_providers") or {})
    senders = {
        "email": settings.email_from,
        "sms": settings.sms_sender,
        "whatsapp": settings.whatsapp_sender,
        "meta": settings.meta_phone_number_id,
        **{k: v for k, v in (profile.get("senders") or {}).items() if v},
    }
    timeouts: dict[str, float] = dict(settings.delivery_timeouts.items())
    timeouts.update(profile.get("delivery_timeouts") or {})
    return Policy(
        channel_order=tuple(profile.get("channel_order") or settings.channel_order),
        channel_providers={
            channel: providers_for(channel, configured, usable) for channel in configured
        },
        delivery_timeouts=timeouts,
        senders=senders,
        reply_to=(profile.get("senders") or {}).get("reply_to"),
        branding_fields={
            k: profile["branding"][k]
            for k in BRANDING_FIELDS
            if (profile.get("branding") or {}).get(k) is not None
        },
    )
