"""Drive emulators running in another process through their control API."""

from __future__ import annotations

from typing import Any

import httpx

from rn623_devinfra.provider_emulators.store import FaultMode, ProviderName


class EmulatorClient:
    """Set faults, reset and read messages of emulators at ``http_url``."""

    def __init__(self, http_url: str, client: httpx.AsyncClient | None = None) -> None:
        self._url = http_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._owns_client = client is None

    async def set_fault(
        self,
        provider: ProviderName,
        mode: FaultMode,
        *,
        channel: str | None = None,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: float | None = None,
    ) -> dict[str, Any]:
        """Inject a fault; returns it as the emulator stored it."""
        response = await self._client.post(
            f"{self._url}/_emulator/faults",
            json={
                "provider": provider,
                "mode": mode,
                "channel": channel,
                "count": count,
                "seconds": seconds,
                "retry_after": retry_after,
            },
        )
        response.raise_for_status()
        fault: dict[str, Any] = response.json()
        return fault

    async def clear_faults(self, provider: ProviderName | None = None) -> None:
        """Remove the faults (of one provider, or all)."""
        params = {"provider": provider} if provider else None
        response = await self._client.delete(f"{self._url}/_emulator/faults", params=params)
        response.raise_for_status()

    async def reset(self) -> None:
        """Forget messages, counts and faults; drop pending callbacks."""
        (await self._client.post(f"{self._url}/_emulator/reset")).raise_for_status()

    async def snapshot(
        self, provider: ProviderName | None = None, channel: str | None = None
    ) -> dict[str, Any]:
        """``GET /_emulator/messages``: ``{"messages": [...], "request_counts": {...}}``."""
        params = {k: v for k, v in {"provider": provider, "channel": channel}.items() if v}
        response = await self._client.get(f"{self._url}/_emulator/messages", params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def messages(
        self, provider: ProviderName | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        """The received messages, oldest first."""
        messages: list[dict[str, Any]] = (await self.snapshot(provider, channel))["messages"]
        return messages

    async def aclose(self) -> None:
        """Close the HTTP client when this object created it."""
        if self._owns_client:
            await self._client.aclose()
