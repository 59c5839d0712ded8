"""Provider adapters: Zenvia v2, Twilio, the Meta WhatsApp Cloud API and SMTP.

Each implements :class:`~notification_svc.providers.base.Provider` and is built from
explicit arguments (base URL, credentials, timeout, an optional shared
``httpx.AsyncClient``), so the service wires them from its settings.
"""

from notification_svc.providers.base import (
    ChannelName,
    DeliveryStatus,
    OutboundMessage,
    Provider,
    ProviderError,
    SendResult,
    StatusUpdate,
    WebhookRejected,
    WhatsAppTemplate,
)
from notification_svc.providers.meta import MetaWhatsAppProvider, verify_subscription
from notification_svc.providers.smtp import SmtpProvider
from notification_svc.providers.twilio import TwilioProvider
from notification_svc.providers.zenvia import ZenviaProvider

__all__ = [
    "ChannelName",
    "DeliveryStatus",
    "MetaWhatsAppProvider",
    "OutboundMessage",
    "Provider",
    "ProviderError",
    "SendResult",
    "SmtpProvider",
    "StatusUpdate",
    "TwilioProvider",
    "WebhookRejected",
    "WhatsAppTemplate",
    "ZenviaProvider",
    "verify_subscription",
]
