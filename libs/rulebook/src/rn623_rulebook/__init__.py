"""RN 623 rulebook: business-day calendars and effective-dated rules, with no I/O.

The names below are the API services use; the modules hold the rest.
"""

from rn623_rulebook.api import Deadline, NoDeadlineRuleError, deadline_for
from rn623_rulebook.calendars import (
    BusinessCalendar,
    CalendarSpec,
    CountingConvention,
    OptionalDay,
    calendar_for,
    operator_calendar_spec,
)
from rn623_rulebook.igr import MonthFigures, igr_goals, monthly_igr, quarterly_igr
from rn623_rulebook.porte import channel_obligations, porte
from rn623_rulebook.protocol_numbers import (
    ProtocolLayout,
    ProtocolNumber,
    SequenceExhausted,
    get_layout,
    registries_of,
)
from rn623_rulebook.retention import (
    complaint_closing,
    protocol_retention,
    purge_allowed,
    resolution_instant,
    retain_until,
    retention_for_protocol,
)
from rn623_rulebook.rules import DeadlineOverride, DemandType, RecordClass, RuleSet, load_ruleset

__all__ = [
    "BusinessCalendar",
    "CalendarSpec",
    "CountingConvention",
    "Deadline",
    "DeadlineOverride",
    "DemandType",
    "MonthFigures",
    "NoDeadlineRuleError",
    "OptionalDay",
    "ProtocolLayout",
    "ProtocolNumber",
    "RecordClass",
    "RuleSet",
    "SequenceExhausted",
    "calendar_for",
    "channel_obligations",
    "complaint_closing",
    "deadline_for",
    "get_layout",
    "igr_goals",
    "load_ruleset",
    "monthly_igr",
    "operator_calendar_spec",
    "porte",
    "protocol_retention",
    "purge_allowed",
    "quarterly_igr",
    "registries_of",
    "resolution_instant",
    "retain_until",
    "retention_for_protocol",
]
