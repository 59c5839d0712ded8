"""Every event contract of the platform; importing this package registers them all.

- ``operators``: ``operator.events`` (operator registry, compacted).
- ``protocols``: ``protocol.events`` (facts recorded by protocol-svc).
- ``inbound``: ``contact-center.inbound`` (what contact-center platforms publish,
  validated by protocol-svc).
- ``deadlines``: ``deadline.events`` (deadlines scheduled, warned, breached, met, recomputed).
- ``retention``: ``retention.events`` (purge requests to the services holding records).
- ``common``: field types shared by the contracts.
"""

from rn623_events.contracts import common, deadlines, inbound, operators, protocols, retention

__all__ = ["common", "deadlines", "inbound", "operators", "protocols", "retention"]
