"""Local emulators of the notification providers: Zenvia v2, Twilio, Meta WhatsApp, SMTP.

One FastAPI app speaks each provider's real request/response format under ``/zenvia``,
``/twilio`` and ``/meta``, checks the configured credentials, and then sends the
delivery callbacks in the provider's own format and signature (``sent`` at once,
``delivered`` a moment later). An aiosmtpd sink stores every e-mail. ``/`` is an inbox
page of everything received; ``/_emulator/...`` injects faults, resets and lists
messages. Everything binds loopback only.

In tests::

    async with running_emulators(EmulatorConfig(meta_webhook_url=...)) as emu:
        provider = MetaWhatsAppProvider(base_url=emu.meta_base_url, ...)
        emu.set_fault("meta", "rate_limit", count=1, retry_after=2)

From a shell: ``python -m rn623_devinfra.provider_emulators --help``.
"""

from rn623_devinfra.provider_emulators.app import FaultRequest, create_app
from rn623_devinfra.provider_emulators.client import EmulatorClient
from rn623_devinfra.provider_emulators.config import (
    DEV_HTTP_PORT,
    DEV_META_ACCESS_TOKEN,
    DEV_META_APP_SECRET,
    DEV_META_PHONE_NUMBER_ID,
    DEV_META_WABA_ID,
    DEV_SMTP_PORT,
    DEV_TWILIO_ACCOUNT_SID,
    DEV_TWILIO_AUTH_TOKEN,
    DEV_ZENVIA_API_TOKEN,
    DEV_ZENVIA_WEBHOOK_TOKEN,
    EmulatorConfig,
    notification_settings,
)
from rn623_devinfra.provider_emulators.receiver import (
    CallbackReceiver,
    ReceivedRequest,
    running_callback_receiver,
)
from rn623_devinfra.provider_emulators.runner import RunningEmulators, running_emulators
from rn623_devinfra.provider_emulators.state import EmulatorState
from rn623_devinfra.provider_emulators.store import (
    EmulatorStore,
    Fault,
    FaultMode,
    ProviderName,
    ReceivedMessage,
)

__all__ = [
    "DEV_HTTP_PORT",
    "DEV_META_ACCESS_TOKEN",
    "DEV_META_APP_SECRET",
    "DEV_META_PHONE_NUMBER_ID",
    "DEV_META_WABA_ID",
    "DEV_SMTP_PORT",
    "DEV_TWILIO_ACCOUNT_SID",
    "DEV_TWILIO_AUTH_TOKEN",
    "DEV_ZENVIA_API_TOKEN",
    "DEV_ZENVIA_WEBHOOK_TOKEN",
    "CallbackReceiver",
    "EmulatorClient",
    "EmulatorConfig",
    "EmulatorState",
    "EmulatorStore",
    "Fault",
    "FaultMode",
    "FaultRequest",
    "ProviderName",
    "ReceivedMessage",
    "ReceivedRequest",
    "RunningEmulators",
    "create_app",
    "notification_settings",
    "running_callback_receiver",
    "running_emulators",
]
