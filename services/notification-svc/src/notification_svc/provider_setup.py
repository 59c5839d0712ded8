"""Build the provider adapters whose credentials are configured; close them."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from notification_svc.providers import (
    MetaWhatsAppProvider,
    Provider,
    SmtpProvider,
    TwilioProvider,
    ZenviaProvider,
)
from notification_svc.settings import NotificationSettings


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter is not None else None


class Providers(dict[str, Provider]):
    """The configured adapters by name, and their HTTP connection pools."""

    def __init__(self, settings: NotificationSettings) -> None:
        super().__init__()
        self.settings = settings
        self.clients: list[httpx.AsyncClient] = []

    def client(self, provider: str) -> httpx.AsyncClient:
        """An httpx client of the provider's own, sending through aiohttp.

        httpx's own transport (httpcore) cost ~2.8 ms of CPU per request at 64 requests
        in flight, against ~0.4 ms through aiohttp (docs/performance.md): most of the
        dispatcher's CPU. The adapters keep httpx's API; see ``HttpProvider._post`` for
        how aiohttp's failures are told apart."""
        size = max(4, self.settings.dispatch_concurrency)
        client = httpx.AsyncClient(
            transport=AiohttpTransport(
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size)
            ),
            timeout=self.settings.timeout_of(provider),
        )
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        """Close every adapter and the pools."""
        for provider in self.values():
            await provider.aclose()
        for client in self.clients:
            await client.aclose()


def build_providers(settings: NotificationSettings) -> Providers:
    """The adapters of every provider with credentials, each with its connection pool."""
    webhooks = settings.public_webhook_url.rstrip("/")
    providers = Providers(settings)
    if settings.smtp_host:
        providers["smtp"] = SmtpProvider(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=_secret(settings.smtp_password),
            timeout=settings.timeout_of("smtp"),
            max_connections=settings.smtp_max_connections,
            idle_seconds=settings.smtp_idle_seconds,
        )
    zenvia_token = _secret(settings.zenvia_api_token)
    if zenvia_token:
        providers["zenvia"] = ZenviaProvider(
            api_token=zenvia_token,
            base_url=settings.zenvia_api_url,
            webhook_token=_secret(settings.zenvia_webhook_token),
            template_ids=settings.zenvia_template_ids,
            timeout=settings.timeout_of("zenvia"),
            client=providers.client("zenvia"),
        )
    twilio_token = _secret(settings.twilio_auth_token)
    if settings.twilio_account_sid and twilio_token:
        providers["twilio"] = TwilioProvider(
            account_sid=settings.twilio_account_sid,
            auth_token=twilio_token,
            status_callback_url=f"{webhooks}/twilio",
            base_url=settings.twilio_api_url,
            content_sids=settings.twilio_content_sids,
            timeout=settings.timeout_of("twilio"),
            client=providers.client("twilio"),
        )
    meta_token = _secret(settings.meta_access_token)
    meta_secret = _secret(settings.meta_app_secret)
    if meta_token and meta_secret:
        providers["meta"] = MetaWhatsAppProvider(
            access_token=meta_token,
            app_secret=meta_secret,
            base_url=settings.meta_api_url,
            api_version=settings.meta_api_version,
            timeout=settings.timeout_of("meta"),
            client=providers.client("meta"),
        )
    return providers
