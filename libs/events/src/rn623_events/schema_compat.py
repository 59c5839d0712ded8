"""Backward-compatibility check between two JSON Schemas of one contract version.

Within a version, producers and consumers are deployed independently, and consumers
also re-read old events (replays, the compacted ``operator.events``). A change is
therefore compatible only if *old readers accept new events* and *new readers accept
old events*. Readers ignore unknown fields (``Event`` uses ``extra="ignore"``), which
makes exactly one structural change safe. The rules:

Compatible
- adding an optional property (unless the old schema forbids additional properties);
- editing annotations: ``title``, ``description``, ``examples``, ``$comment``,
  ``deprecated``, ``readOnly``, ``writeOnly``;
- renaming or moving ``$defs`` (references are resolved before comparing);
- reordering ``enum`` values.

Incompatible (each reported with a path such as ``$.extra_holidays[].date``)
- removing a property, required or not;
- adding a required property; making an optional property required or a required
  one optional;
- changing a type, including nullable ↔ non-nullable and integer → number;
- adding, removing or changing ``enum``/``const`` values (old readers reject values
  they do not know);
- changing ``format``, ``pattern``, ``default``, ``multipleOf``, ``uniqueItems`` or
  ``additionalProperties``;
- changing a bound (``minLength``/``maxLength``, ``minimum``/``maximum``, exclusive
  bounds, ``minItems``/``maxItems``, ``minProperties``/``maxProperties``) in either
  direction: tightening breaks new readers of old events, loosening breaks old readers
  of new events;
- adding or removing ``anyOf``/``oneOf``/``allOf`` alternatives (alternatives are
  compared by position), ``items`` or ``prefixItems`` entries;
- any change of a keyword this module does not know (strict by default).

Such changes need a new contract version. The check is a pure function: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]

ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$id",
        "$schema",
        "$defs",
        "definitions",
    }
)
STRUCTURAL = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "anyOf",
        "oneOf",
        "allOf",
        "discriminator",
    }
)
LOWER_BOUNDS = frozenset(
    {"minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties", "minContains"}
)
UPPER_BOUNDS = frozenset(
    {"maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties", "maxContains"}
)
UNIONS = ("anyOf", "oneOf", "allOf")
_NULL = {"type": "null"}
_MISSING = object()


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """Return every incompatible change from ``old`` to ``new`` as ``"<path>: <what>"``."""
    checker = _Checker(old, new)
    checker.compare(old, new, "$")
    return checker.problems


def is_compatible(old: Schema, new: Schema) -> bool:
    """Whether ``new`` is backward-compatible with ``old`` (no incompatibilities)."""
    return not incompatibilities(old, new)


def _as_schema(value: Any) -> dict[str, Any]:
    """Normalize boolean schemas: ``true`` accepts anything, ``false`` nothing."""
    if value is True:
        return {}
    if value is False:
        return {"not": {}}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not a JSON Schema: {value!r}")


def _pointer(root: Schema, ref: str) -> Any:
    """Resolve a local JSON Pointer reference (``#/...``) inside ``root``."""
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = root
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"unresolvable $ref {ref!r}") from None
    return node


def _resolve(schema: Any, root: Schema) -> tuple[dict[str, Any], str | None]:
    """Follow ``$ref`` chains, merging sibling keywords; return the schema and first ref."""
    current = _as_schema(schema)
    first: str | None = None
    for _ in range(64):
        ref = current.get("$ref")
        if ref is None:
            return current, first
        first = first or ref
        siblings = {k: v for k, v in current.items() if k != "$ref"}
        current = {**_as_schema(_pointer(root, ref)), **siblings}
    raise ValueError(f"$ref chain too long starting at {first!r}")


def _split_nullable(schema: dict[str, Any], root: Schema) -> tuple[dict[str, Any], bool]:
    """Separate ``null`` from a schema: ``anyOf [X, null]`` or ``type: [X, "null"]``."""
    for key in ("anyOf", "oneOf"):
        alternatives = schema.get(key)
        if not isinstance(alternatives, list):
            continue
        rest = [a for a in alternatives if _as_schema(a) != _NULL]
        if len(rest) == len(alternatives):
            continue
        outer = {k: v for k, v in schema.items() if k != key}
        if len(rest) == 1:
            inner, _ = _resolve(rest[0], root)
            return {**outer, **inner}, True
        return {**outer, key: rest}, True
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        remaining = [t for t in types if t != "null"]
        merged = dict(schema)
        if len(remaining) == 1:
            merged["type"] = remaining[0]
        elif remaining:
            merged["type"] = remaining
        else:
            merged["type"] = "null"
            return merged, False
        return merged, True
    return schema, False


def _types(schema: Schema) -> frozenset[str] | None:
    types = schema.get("type")
    if types is None:
        return None
    return frozenset([types] if isinstance(types, str) else types)


def _describe_types(types: frozenset[str] | None, schema: Schema) -> str:
    if types is not None:
        return "|".join(sorted(types))
    for key in UNIONS:
        if key in schema:
            return key
    return "any"


def _values(schema: Schema) -> dict[str, Any] | None:
    """The allowed values of an ``enum``/``const`` keyed by canonical JSON, else None."""
    if "const" in schema:
        values = [schema["const"]]
    elif "enum" in schema:
        values = list(schema["enum"])
    else:
        return None
    return {json.dumps(v, sort_keys=True): v for v in values}


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class _Checker:
    """Walks two schemas side by side, collecting incompatibilities."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []
        self._active: set[tuple[str | None, str | None]] = set()

    def report(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def compare(self, old_raw: Any, new_raw: Any, path: str) -> None:
        old, old_ref = _resolve(old_raw, self.old_root)
        new, new_ref = _resolve(new_raw, self.new_root)
        pair = (old_ref, new_ref)
        if old_ref is not None or new_ref is not None:
            if pair in self._active:
                return  # recursive schema: this pair is already being compared above
            self._active.add(pair)
        try:
            self._compare(old, new, path)
        finally:
            self._active.discard(pair)

    def _compare(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old, old_nullable = _split_nullable(old, self.old_root)
        new, new_nullable = _split_nullable(new, self.new_root)
        if old_nullable and not new_nullable:
            self.report(path, "is no longer nullable")
        elif new_nullable and not old_nullable:
            self.report(path, "became nullable")
        old_types, new_types = _types(old), _types(new)
        if old_types != new_types:
            was, now = _describe_types(old_types, old), _describe_types(new_types, new)
            self.report(path, f"type changed from {was} to {now}")
            return
        self._compare_values(old, new, path)
        self._compare_unions(old, new, path)
        self._compare_objects(old, new, path)
        self._compare_arrays(old, new, path)
        self._compare_discriminator(old, new, path)
        self._compare_keywords(old, new, path)

    def _compare_values(self, old: Schema, new: Schema, path: str) -> None:
        old_values, new_values = _values(old), _values(new)
        if old_values is None and new_values is None:
            return
        if old_values is None:
            assert new_values is not None
            self.report(path, f"values restricted to {_show(list(new_values.values()))}")
            return
        if new_values is None:
            self.report(path, f"enum removed (was {_show(list(old_values.values()))})")
            return
        removed = [v for k, v in old_values.items() if k not in new_values]
        added = [v for k, v in new_values.items() if k not in old_values]
        if removed:
            self.report(path, f"enum values removed: {_show(removed)}")
        if added:
            self.report(path, f"enum values added: {_show(added)}")

    def _compare_unions(self, old: Schema, new: Schema, path: str) -> None:
        for key in UNIONS:
            old_alts, new_alts = old.get(key), new.get(key)
            if old_alts is None and new_alts is None:
                continue
            if old_alts is None or new_alts is None:
                self.report(path, f"{key} {'added' if old_alts is None else 'removed'}")
                continue
            if len(old_alts) != len(new_alts):
                self.report(path, f"{key} has {len(new_alts)} alternatives, was {len(old_alts)}")
                continue
            for index, (old_alt, new_alt) in enumerate(zip(old_alts, new_alts, strict=True)):
                self.compare(old_alt, new_alt, f"{path}.{key}[{index}]")

    def _compare_objects(self, old: Schema, new: Schema, path: str) -> None:
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        old_additional = old.get("additionalProperties", True)
        for name, old_schema in old_props.items():
            child = f"{path}.{name}"
            if name not in new_props:
                self.report(child, "property removed")
                continue
            self.compare(old_schema, new_props[name], child)
        for name, new_schema in new_props.items():
            if name in old_props:
                continue
            child = f"{path}.{name}"
            if name in new_required:
                self.report(child, "required property added")
            elif old_additional is False:
                self.report(child, "property added but the old schema forbids extra properties")
            elif isinstance(old_additional, Mapping) and old_additional:
                self.compare(old_additional, new_schema, child)
        for name in sorted(old_required - new_required):
            if name in new_props or name not in old_props:
                self.report(f"{path}.{name}", "was required, is now optional")
        for name in sorted(new_required - old_required):
            if name in old_props or name not in new_props:
                self.report(f"{path}.{name}", "was optional, is now required")
        self._compare_additional(old_additional, new.get("additionalProperties", True), path)

    def _compare_additional(self, old: Any, new: Any, path: str) -> None:
        old_schema, new_schema = _as_schema(old), _as_schema(new)
        if old_schema == new_schema:
            return
        if old_schema and new_schema and "not" not in old_schema and "not" not in new_schema:
            self.compare(old_schema, new_schema, f"{path}.*")
            return
        self.report(path, f"additionalProperties changed from {_show(old)} to {_show(new)}")

    def _compare_arrays(self, old: Schema, new: Schema, path: str) -> None:
        if "items" in old and "items" in new:
            self.compare(old["items"], new["items"], f"{path}[]")
        elif "items" in old or "items" in new:
            self.report(path, f"items {'added' if 'items' in new else 'removed'}")
        old_prefix, new_prefix = old.get("prefixItems"), new.get("prefixItems")
        if old_prefix is None and new_prefix is None:
            return
        old_prefix, new_prefix = old_prefix or [], new_prefix or []
        if len(old_prefix) != len(new_prefix):
            self.report(path, f"prefixItems has {len(new_prefix)} entries, was {len(old_prefix)}")
            return
        for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=True)):
            self.compare(old_item, new_item, f"{path}[{index}]")

    def _compare_discriminator(self, old: Schema, new: Schema, path: str) -> None:
        old_disc, new_disc = old.get("discriminator"), new.get("discriminator")
        if old_disc is None and new_disc is None:
            return

        def shape(disc: Any) -> tuple[Any, list[str]] | None:
            if not isinstance(disc, Mapping):
                return None
            return disc.get("propertyName"), sorted(disc.get("mapping", {}))

        if shape(old_disc) != shape(new_disc):
            self.report(path, "discriminator changed")

    def _compare_keywords(self, old: Schema, new: Schema, path: str) -> None:
        keywords = (set(old) | set(new)) - ANNOTATIONS - STRUCTURAL
        for keyword in sorted(keywords):
            was, now = old.get(keyword, _MISSING), new.get(keyword, _MISSING)
            if was == now:
                continue
            if keyword in LOWER_BOUNDS or keyword in UPPER_BOUNDS:
                self.report(path, _bound_change(keyword, was, now))
            elif was is _MISSING:
                self.report(path, f"{keyword} added: {_show(now)}")
            elif now is _MISSING:
                self.report(path, f"{keyword} removed (was {_show(was)})")
            else:
                self.report(path, f"{keyword} changed from {_show(was)} to {_show(now)}")


def _bound_change(keyword: str, was: Any, now: Any) -> str:
    """Describe a bound change as tightened (breaks new readers) or loosened (old readers)."""
    if was is _MISSING:
        return f"{keyword} added ({_show(now)}): tightened"
    if now is _MISSING:
        return f"{keyword} removed (was {_show(was)}): loosened"
    raised = now > was
    tightened = raised if keyword in LOWER_BOUNDS else not raised
    return f"{keyword} {'tightened' if tightened else 'loosened'} from {_show(was)} to {_show(now)}"
