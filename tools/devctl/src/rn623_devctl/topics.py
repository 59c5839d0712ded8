"""Create the platform's Kafka topics with ``rn623_events.topics``."""

from __future__ import annotations

import asyncio

from rn623_devctl.console import info, step
from rn623_devctl.infra import StartupError
from rn623_events.settings import KafkaSettings
from rn623_events.topics import ensure_topics


def ensure_platform_topics(bootstrap_servers: str, timeout: float = 60.0) -> None:
    """Create the catalogue's missing topics, failing start-up with a clear error."""
    with step("Topics: ensuring the platform topics exist"):
        settings = KafkaSettings(bootstrap_servers=bootstrap_servers)
        try:
            created = asyncio.run(asyncio.wait_for(ensure_topics(settings), timeout))
        except Exception as exc:
            raise StartupError(f"topic creation failed: {exc!r}") from exc
        info(f"created {len(created)}: {', '.join(created)}" if created else "all exist already")
