"""retention-svc settings (environment variables, see rn623_events.settings)."""

from __future__ import annotations

from typing import get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from rn623_events.contracts.common import RecordClass, ServiceName
from rn623_events.settings import ServiceSettings

# Which services hold each class of record and must confirm its purge (DESIGN §3).
DEFAULT_OWNERS: dict[RecordClass, tuple[ServiceName, ...]] = {
    "recording": ("protocol-svc",),
    "interaction_record": ("protocol-svc",),
    "protocol_record": ("protocol-svc",),
    "notification": ("notification-svc",),
    "complaint_linked": ("protocol-svc", "notification-svc"),
}


class RetentionSettings(ServiceSettings):
    """Settings of retention-svc."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = "retention-svc"
    # RECORD_OWNERS='{"recording": ["protocol-svc"], ...}': who purges each record class.
    record_owners: dict[RecordClass, tuple[ServiceName, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_OWNERS)
    )

    @field_validator("record_owners")
    @classmethod
    def _every_class_has_owners(
        cls, value: dict[RecordClass, tuple[ServiceName, ...]]
    ) -> dict[RecordClass, tuple[ServiceName, ...]]:
        missing = [c for c in get_args(RecordClass) if not value.get(c)]
        if missing:
            raise ValueError(f"every record class needs owners; missing: {', '.join(missing)}")
        return value

    # The purge runner: how often it looks for records past retention, how many schedule
    # entries one transaction takes, and whether it only reports (PURGE_DRY_RUN=true).
    purge_interval_seconds: float = Field(default=5.0, gt=0)
    purge_batch_size: int = Field(default=2000, ge=1, le=50_000)
    purge_dry_run: bool = False
    # Key of the beneficiary pseudonym (HMAC-SHA256 of the CPF or card number). Set a
    # random secret in production; changing it orphans holds and access requests by
    # beneficiary.
    beneficiary_key_secret: SecretStr = SecretStr("rn623-dev-beneficiary-key-change-me")
    # Where the records of an access request come from (protocol-svc's public API).
    protocol_svc_url: str = "http://127.0.0.1:8001"
    # Bearer token for reading records from their owners (scope protocols:read on every
    # operator). Unset: the worker mints short-lived per-operator tokens with JWT_SECRET.
    records_api_token: SecretStr | None = None
    collector_interval_seconds: float = Field(default=2.0, gt=0)
    collector_timeout_seconds: float = Field(default=10.0, gt=0)
    collector_max_backoff_seconds: float = Field(default=300.0, gt=0)
    # How often the metrics gauges are refreshed from the database.
    gauges_interval_seconds: float = Field(default=30.0, gt=0)
