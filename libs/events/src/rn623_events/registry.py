"""Versioned event contracts: Pydantic payload models registered by type and version."""

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


@dataclass(frozen=True)
class ContractInfo:
    """One registered contract: its type, version, topic and payload model."""

    event_type: str
    version: int
    topic: str
    model: type[Event]
    summary: str

    @property
    def dataschema(self) -> str:
        """URI naming the schema of this contract (CloudEvents ``dataschema``)."""
        return schema_uri(self.event_type, self.version)


def schema_uri(event_type: str, version: int) -> str:
    """Return the ``dataschema`` URI of an event type and version."""
    return f"urn:rn623:events:{event_type}:v{version}"


class UnknownEventError(LookupError):
    """No contract is registered for an event type and version."""


class Registry:
    """All known contracts, looked up by ``(type, version)``."""

    def __init__(self) -> None:
        self._contracts: dict[tuple[str, int], ContractInfo] = {}

    def add(self, model: type[Event], *, event_type: str, version: int, topic: str) -> None:
        """Register ``model`` as the payload of ``event_type`` version ``version``."""
        key = (event_type, version)
        existing = self._contracts.get(key)
        if existing is not None and existing.model is not model:
            raise ValueError(f"{event_type} v{version} is already registered")
        summary = (model.__doc__ or event_type).strip().splitlines()[0]
        self._contracts[key] = ContractInfo(event_type, version, topic, model, summary)

    def get(self, event_type: str, version: int) -> ContractInfo:
        """Return the contract for ``event_type`` and ``version``."""
        try:
            return self._contracts[(event_type, version)]
        except KeyError:
            raise UnknownEventError(f"no contract for {event_type} v{version}") from None

    def __iter__(self) -> Iterator[ContractInfo]:
        return iter(sorted(self._contracts.values(), key=lambda c: (c.event_type, c.version)))

    def __len__(self) -> int:
        return len(self._contracts)

    def __contains__(self, key: object) -> bool:
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
