"""deadline-svc settings (environment variables, see rn623_events.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from rn623_events.contracts.deadlines import Checkpoint
from rn623_events.settings import ServiceSettings


class DeadlineSettings(ServiceSettings):
    """Settings of deadline-svc."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = "deadline-svc"
    # Warning checkpoints, each emitted once per deadline (WARNING_CHECKPOINTS='["..."]').
    warning_checkpoints: tuple[Checkpoint, ...] = ("one_business_day_left", "elapsed_80_percent")
    # How often the scheduler looks for due warnings and breaches, and how many deadlines
    # one transaction handles.
    scheduler_interval_seconds: float = Field(default=1.0, gt=0)
    scheduler_batch_size: int = Field(default=500, ge=1, le=10_000)
    # How often the open-deadline gauges are refreshed from the database.
    gauges_interval_seconds: float = Field(default=30.0, gt=0)
