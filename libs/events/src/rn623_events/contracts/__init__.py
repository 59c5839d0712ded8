"""Every event contract of the platform; importing this package registers them all."""

from rn623_events.contracts import operators

__all__ = ["operators"]
