"""Every event contract of the platform; importing this package registers them all.

- ``operators``: ``operator.events`` (operator registry, compacted).
- ``protocols``: ``protocol.events`` (facts recorded by protocol-svc).
- ``inbound``: ``contact-center.inbound`` (what contact-center platforms publish,
  validated by protocol-svc).
- ``deadlines``: ``deadline.events`` (deadlines scheduled, warned, breached, met, recomputed).
- ``notifications``: ``notification.events`` (messages sent, delivered, failed; purges).
- ``retention``: ``retention.events`` (schedules, purge requests, disposals, records access).
- ``igr``: ``igr.events`` (the IGR of each closed quarter).
- ``common``: field types shared by the contracts.
"""

from rn623_events.contracts import (
    common,
    deadlines,
    igr,
    inbound,
    notifications,
    operators,
    protocols,
    retention,
)

__all__ = [
    "common",
    "deadlines",
    "igr",
    "inbound",
    "notifications",
    "operators",
    "protocols",
    "retention",
]
