"""igr-svc settings (environment variables, see rn623_events.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from rn623_events.contracts.igr import QuarterlyMethod
from rn623_events.settings import ServiceSettings


class IgrSettings(ServiceSettings):
    """Settings of igr-svc."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = "igr-svc"
    # IGR médio of a quarter: mean of the three monthly values (the rulebook's default)
    # or complaints of the quarter ÷ sum of the monthly beneficiary counts.
    quarterly_method: QuarterlyMethod = "mean_of_monthly"
    # A quarter closes this many days after it ends (complaints of its last days may
    # still be registered); late complaints then become revisions.
    close_after_days: int = Field(default=5, ge=0, le=120)
    # The first quarter the worker closes by itself (RN 623's first cycle: Jul-Sep 2025);
    # earlier quarters (imported history) close only when an admin asks.
    first_quarter: str = Field(default="2025Q3", pattern=r"^[0-9]{4}Q[1-4]$")
    # How often the worker refreshes the open quarter's per-operator gauges.
    gauges_interval_seconds: float = Field(default=60.0, gt=0)
    # How often the worker closes due quarters and publishes revisions.
    closer_interval_seconds: float = Field(default=60.0, gt=0)
