"""What the HTTP provider adapters share: the client, a POST whose transport failures
become retryable provider errors, and reading a JSON object back."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import aiohttp
import httpx

from notification_svc.providers.base import ProviderError


class HttpProvider:
    """Base of the adapters that speak a provider's HTTP API."""

    def __init__(self, *, timeout: float, client: httpx.AsyncClient | None) -> None:
        self._timeout = timeout
        self._client = client or httpx.AsyncClient()
        self._owns_client = client is None

    async def _post(self, url: str, **request: Any) -> httpx.Response:
        """POST ``url``; a timeout or a broken connection is a retryable ProviderError."""
        try:
            return await self._client.post(parsed_url(url), timeout=self._timeout, **request)
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(transport_failure(exc), retryable=True) from exc

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter created it."""
        if self._owns_client:
            await self._client.aclose()


@lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """``url`` parsed once: httpx parses and percent-checks a string URL on every request
    (~10 % of a busy dispatcher's CPU), while an ``httpx.URL`` is taken as it is. An
    adapter's URLs are few (one per sender or account)."""
    return httpx.URL(url)


def transport_failure(exc: BaseException) -> str:
    """``timeout`` or ``connection_error``. The aiohttp transport reports every aiohttp
    connection error (refused, reset) as ``httpx.ConnectTimeout``, so an aiohttp cause
    decides; without one, httpx's own exception does."""
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    return (
        "timeout"
        if isinstance(cause, httpx.TimeoutException | TimeoutError)
        else "connection_error"
    )


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body when it is a JSON object, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
