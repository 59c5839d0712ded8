"""protocol-svc settings (environment variables, see rn623_events.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from rn623_events.settings import ServiceSettings


class ProtocolSettings(ServiceSettings):
    """Settings of protocol-svc."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = "protocol-svc"
    # Protocol sequence numbers are reserved from the database in blocks, so issuing a
    # protocol never waits on a per-operator row lock. A replica that stops leaves the
    # rest of its block unused: numbers are unique and never reused, not gap-free.
    sequence_block_size: int = 20
    # Protocols requested while a transaction is busy are issued together in the next
    # one (group commit): at most this many per transaction, this many transactions at
    # a time per process. A lone request is issued at once, alone.
    issue_group_max: int = Field(default=64, ge=1, le=1000)
    issue_concurrency: int = Field(default=2, ge=1, le=64)
    # Which contact-center platforms (CloudEvents source of their records on
    # contact-center.inbound) may act for which operators, e.g.
    # INBOUND_SOURCES='{"cc-acme": ["123456", "654321"], "bpo-x": ["*"]}'. Empty: any
    # source may act for any operator (development); Kafka ACLs decide who may write.
    inbound_sources: dict[str, list[str]] = {}
