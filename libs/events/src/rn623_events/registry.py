"""Versioned event contracts: Pydantic payload models registered by topic, type and version."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """Base class of every event payload.

    Readers ignore unknown fields, so adding an optional field is a compatible change;
    anything else needs a new version (see ``schema_compat``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    topic: ClassVar[str]

    def subject(self) -> str:
        """Aggregate id of the event: the Kafka key and the CloudEvents ``subject``."""
        raise NotImplementedError(f"{type(self).__name__} must define subject()")


ContractKey = tuple[str, str, int]
"""``(topic, event_type, version)``: what identifies a contract."""


@dataclass(frozen=True)
class ContractInfo:
    """One registered contract: its topic, type, version and payload model."""

    event_type: str
    version: int
    topic: str
    model: type[Event]
    summary: str

    @property
    def key(self) -> ContractKey:
        """The registry key of this contract: ``(topic, event_type, version)``."""
        return (self.topic, self.event_type, self.version)

    @property
    def dataschema(self) -> str:
        """URI naming the schema of this contract (CloudEvents ``dataschema``)."""
        return schema_uri(self.event_type, self.version, topic=self.topic)


def schema_uri(event_type: str, version: int, *, topic: str) -> str:
    """Return the ``dataschema`` URI of an event type and version on a topic.

    The topic is part of the URI because one type name may exist on two topics with
    different payloads (``demand.answered`` on ``protocol.events`` and on
    ``contact-center.inbound``).
    """
    return f"urn:rn623:events:{topic}:{event_type}:v{version}"


class UnknownEventError(LookupError):
    """No contract is registered for an event type and version (on the given topic)."""


class AmbiguousEventError(LookupError):
    """An event type and version exist on several topics and no topic was given."""


class Registry:
    """All known contracts, looked up by ``(topic, type, version)``.

    The same type name may be registered on several topics (each with its own model);
    a lookup without a topic succeeds only when the type and version are unique.
    """

    def __init__(self) -> None:
        self._contracts: dict[ContractKey, ContractInfo] = {}

    def add(self, model: type[Event], *, event_type: str, version: int, topic: str) -> None:
        """Register ``model`` as the payload of ``event_type`` v``version`` on ``topic``."""
        key = (topic, event_type, version)
        existing = self._contracts.get(key)
        if existing is not None and existing.model is not model:
            raise ValueError(f"{event_type} v{version} is already registered on {topic}")
        summary = (model.__doc__ or event_type).strip().splitlines()[0]
        self._contracts[key] = ContractInfo(event_type, version, topic, model, summary)

    def get(self, event_type: str, version: int, topic: str | None = None) -> ContractInfo:
        """Return the contract for ``event_type`` and ``version`` (on ``topic``).

        Without ``topic`` the type and version must be registered on exactly one topic;
        otherwise ``AmbiguousEventError`` names the topics to choose from. An unknown
        combination raises ``UnknownEventError``.
        """
        if topic is not None:
            try:
                return self._contracts[(topic, event_type, version)]
            except KeyError:
                raise UnknownEventError(
                    f"no contract for {event_type} v{version} on topic {topic}"
                ) from None
        matches = [
            info for (_, t, v), info in self._contracts.items() if t == event_type and v == version
        ]
        if not matches:
            raise UnknownEventError(f"no contract for {event_type} v{version}")
        if len(matches) > 1:
            topics = ", ".join(sorted(info.topic for info in matches))
            raise AmbiguousEventError(
                f"{event_type} v{version} exists on several topics ({topics}); pass topic="
            )
        return matches[0]

    def on_topic(self, topic: str) -> list[ContractInfo]:
        """Every contract published on ``topic``, sorted by type and version."""
        return [info for info in self if info.topic == topic]

    def __iter__(self) -> Iterator[ContractInfo]:
        return iter(
            sorted(self._contracts.values(), key=lambda c: (c.event_type, c.version, c.topic))
        )

    def __len__(self) -> int:
        return len(self._contracts)

    def __contains__(self, key: object) -> bool:
        """``(topic, type, version)`` is registered; ``(type, version)`` on any topic."""
        if isinstance(key, tuple) and len(key) == 2:
            return any((t, v) == key for (_, t, v) in self._contracts)
        return key in self._contracts


REGISTRY = Registry()

E = TypeVar("E", bound=type[Event])


def contract(
    event_type: str, *, version: int, topic: str, registry: Registry | None = None
) -> Callable[[E], E]:
    """Class decorator declaring an event contract and registering it."""

    def decorate(model: E) -> E:
        model.event_type = event_type
        model.event_version = version
        model.topic = topic
        (registry if registry is not None else REGISTRY).add(
            model, event_type=event_type, version=version, topic=topic
        )
        return model

    return decorate


def json_schema(info: ContractInfo) -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a contract's payload."""
    schema = info.model.model_json_schema(mode="serialization")
    schema["$id"] = info.dataschema
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
