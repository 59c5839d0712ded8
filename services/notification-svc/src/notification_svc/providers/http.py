"""What the HTTP provider adapters share: the client, a POST whose transport failures
become retryable provider errors, and reading a JSON object back."""

from __future__ import annotations

from typing import Any

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
            return await self._client.post(url, timeout=self._timeout, **request)
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ProviderError("connection_error", retryable=True) from exc

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter created it."""
        if self._owns_client:
            await self._client.aclose()


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body when it is a JSON object, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
