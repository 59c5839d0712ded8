"""The backward-compatibility rules of ``schema_compat``, one synthetic case per rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import rn623_events.contracts  # noqa: F401
from rn623_events.registry import REGISTRY, json_schema
from rn623_events.schema_compat import incompatibilities, is_compatible

pytestmark = pytest.mark.unit


def obj(required: tuple[str, ...] = ("a",), **properties: Any) -> dict[str, Any]:
    """An object schema with the given properties (default: one required string ``a``)."""
    props = properties or {"a": {"type": "string"}}
    return {"type": "object", "properties": props, "required": list(required)}


def with_prop(schema: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``obj(a=schema)`` after merging ``changes`` into the property schema."""
    return obj(a={**schema, **changes})


def assert_compatible(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert incompatibilities(old, new) == []
    assert is_compatible(old, new)


def assert_incompatible(old: dict[str, Any], new: dict[str, Any], *fragments: str) -> list[str]:
    problems = incompatibilities(old, new)
    assert problems, "expected an incompatibility"
    text = "\n".join(problems)
    for fragment in fragments:
        assert fragment in text
    return problems


# adding / removing properties


def test_adding_an_optional_property_is_compatible() -> None:
    old = obj(a={"type": "string"})
    new = obj(a={"type": "string"}, b={"type": "integer"})
    assert_compatible(old, new)


def test_adding_a_required_property_is_incompatible() -> None:
    old = obj(a={"type": "string"})
    new = obj(("a", "b"), a={"type": "string"}, b={"type": "integer"})
    assert_incompatible(old, new, "$.b: required property added")


def test_adding_a_property_when_extra_properties_are_forbidden_is_incompatible() -> None:
    old = {**obj(), "additionalProperties": False}
    new = {**obj(a={"type": "string"}, b={"type": "string"}), "additionalProperties": False}
    assert_incompatible(old, new, "$.b: property added but the old schema forbids")


@pytest.mark.parametrize("required", [("a", "b"), ("a",)])
def test_removing_a_property_is_incompatible(required: tuple[str, ...]) -> None:
    old = obj(required, a={"type": "string"}, b={"type": "string"})
    new = obj(a={"type": "string"})
    problems = assert_incompatible(old, new, "$.b: property removed")
    assert len(problems) == 1  # not also reported as "no longer required"


# required / optional


def test_keeping_required_set_is_compatible_whatever_the_order() -> None:
    old = obj(("a", "b"), a={"type": "string"}, b={"type": "string"})
    new = obj(("b", "a"), a={"type": "string"}, b={"type": "string"})
    assert_compatible(old, new)


def test_making_an_optional_property_required_is_incompatible() -> None:
    old = obj((), a={"type": "string"})
    new = obj(("a",), a={"type": "string"})
    assert_incompatible(old, new, "$.a: was optional, is now required")


def test_making_a_required_property_optional_is_incompatible() -> None:
    old = obj(("a",), a={"type": "string"})
    new = obj((), a={"type": "string"})
    assert_incompatible(old, new, "$.a: was required, is now optional")


# types and nullability


def test_annotation_changes_are_compatible() -> None:
    old = with_prop({"type": "string"}, title="A", description="old")
    new = with_prop({"type": "string"}, title="Renamed", description="new", examples=["x"])
    assert_compatible({**old, "title": "Old"}, {**new, "title": "New", "$comment": "c"})


@pytest.mark.parametrize(
    ("was", "now"),
    [("string", "integer"), ("integer", "number"), ("number", "integer"), ("string", "object")],
)
def test_changing_a_type_is_incompatible(was: str, now: str) -> None:
    assert_incompatible(with_prop({"type": was}), with_prop({"type": now}), f"from {was} to {now}")


def test_nullable_to_non_nullable_is_incompatible() -> None:
    old = with_prop({"anyOf": [{"type": "string"}, {"type": "null"}], "default": None})
    new = with_prop({"type": "string"})
    assert_incompatible(old, new, "$.a: is no longer nullable")


def test_non_nullable_to_nullable_is_incompatible() -> None:
    old = with_prop({"type": "string"})
    new = with_prop({"type": ["string", "null"]})
    assert_incompatible(old, new, "$.a: became nullable")


def test_nullable_in_either_spelling_is_compatible() -> None:
    old = with_prop({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]})
    new = with_prop({"type": ["string", "null"], "maxLength": 3})
    assert_compatible(old, new)


def test_a_change_inside_a_nullable_property_is_reported() -> None:
    old = with_prop({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]})
    new = with_prop({"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]})
    assert_incompatible(old, new, "$.a: maxLength loosened from 3 to 4")


# enum and const


def test_reordering_enum_values_is_compatible() -> None:
    old = with_prop({"type": "string", "enum": ["x", "y"]})
    new = with_prop({"type": "string", "enum": ["y", "x"]})
    assert_compatible(old, new)


def test_adding_an_enum_value_is_incompatible() -> None:
    old = with_prop({"type": "string", "enum": ["x", "y"]})
    new = with_prop({"type": "string", "enum": ["x", "y", "z"]})
    assert_incompatible(old, new, 'enum values added: ["z"]')


def test_removing_an_enum_value_is_incompatible() -> None:
    old = with_prop({"type": "string", "enum": ["x", "y"]})
    new = with_prop({"type": "string", "enum": ["x"]})
    assert_incompatible(old, new, 'enum values removed: ["y"]')


def test_adding_or_removing_an_enum_is_incompatible() -> None:
    free = with_prop({"type": "string"})
    closed = with_prop({"type": "string", "enum": ["x"]})
    assert_incompatible(free, closed, "values restricted to")
    assert_incompatible(closed, free, "enum removed")


def test_const_is_compared_like_a_one_value_enum() -> None:
    assert_compatible(
        with_prop({"type": "string", "const": "x"}), with_prop({"type": "string", "enum": ["x"]})
    )
    assert_incompatible(
        with_prop({"type": "string", "const": "x"}),
        with_prop({"type": "string", "const": "y"}),
        "enum values removed",
        "enum values added",
    )


# format, pattern, default and bounds


def test_same_format_is_compatible_and_a_changed_format_is_not() -> None:
    date = with_prop({"type": "string", "format": "date"})
    assert_compatible(date, copy.deepcopy(date))
    assert_incompatible(
        date, with_prop({"type": "string", "format": "date-time"}), 'format changed from "date"'
    )
    assert_incompatible(date, with_prop({"type": "string"}), "format removed")


def test_changing_a_pattern_is_incompatible() -> None:
    old = with_prop({"type": "string", "pattern": "^[0-9]{6}$"})
    assert_compatible(old, with_prop({"type": "string", "pattern": "^[0-9]{6}$"}))
    assert_incompatible(old, with_prop({"type": "string", "pattern": "^[0-9]{7}$"}), "pattern")
    assert_incompatible(with_prop({"type": "string"}), old, "pattern added")


def test_changing_a_default_is_incompatible() -> None:
    old = obj((), a={"type": "string", "default": "x"})
    assert_compatible(old, obj((), a={"type": "string", "default": "x", "title": "A"}))
    assert_incompatible(old, obj((), a={"type": "string", "default": "y"}), "default changed")


@pytest.mark.parametrize(
    ("keyword", "was", "now", "verdict"),
    [
        ("maxLength", 10, 5, "tightened"),
        ("maxLength", 10, 20, "loosened"),
        ("minLength", 1, 2, "tightened"),
        ("minLength", 2, 1, "loosened"),
        ("minimum", 0, 1, "tightened"),
        ("maximum", 10, 9, "tightened"),
        ("exclusiveMinimum", 0, 1, "tightened"),
        ("minItems", 0, 1, "tightened"),
        ("maxItems", 5, 6, "loosened"),
    ],
)
def test_changing_a_bound_is_incompatible(keyword: str, was: int, now: int, verdict: str) -> None:
    base: dict[str, Any] = {"type": "integer" if "imum" in keyword else "string"}
    if "Items" in keyword:
        base = {"type": "array", "items": {"type": "string"}}
    old = with_prop({**base, keyword: was})
    assert_compatible(old, with_prop({**base, keyword: was, "description": "same bound"}))
    assert_incompatible(old, with_prop({**base, keyword: now}), f"{keyword} {verdict}")


def test_adding_or_removing_a_bound_is_incompatible() -> None:
    plain = with_prop({"type": "string"})
    bounded = with_prop({"type": "string", "maxLength": 5})
    assert_incompatible(plain, bounded, "maxLength added (5): tightened")
    assert_incompatible(bounded, plain, "maxLength removed (was 5): loosened")


# references, nesting, arrays and unions


def test_refs_are_resolved_and_renamed_defs_are_compatible() -> None:
    inner = {"type": "object", "properties": {"d": {"type": "string"}}, "required": ["d"]}
    old = {**obj(a={"$ref": "#/$defs/Old"}), "$defs": {"Old": inner}}
    new = {**obj(a={"$ref": "#/$defs/New"}), "$defs": {"New": copy.deepcopy(inner)}}
    assert_compatible(old, new)


def test_a_change_behind_a_ref_is_reported_with_its_path() -> None:
    old = {
        **obj(a={"type": "array", "items": {"$ref": "#/$defs/H"}}),
        "$defs": {"H": obj(("d",), d={"type": "string", "format": "date"})},
    }
    new = copy.deepcopy(old)
    new["$defs"]["H"]["properties"]["d"]["format"] = "date-time"
    assert_incompatible(old, new, "$.a[].d: format changed")


def test_refs_with_siblings_are_merged() -> None:
    old = {**obj(a={"$ref": "#/$defs/S", "maxLength": 3}), "$defs": {"S": {"type": "string"}}}
    new = {**obj(a={"type": "string", "maxLength": 3})}
    assert_compatible(old, new)


def test_recursive_schemas_terminate() -> None:
    node: dict[str, Any] = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
    }
    old: dict[str, Any] = {"$ref": "#/$defs/Node", "$defs": {"Node": node}}
    assert_compatible(old, copy.deepcopy(old))
    new = copy.deepcopy(old)
    new["$defs"]["Node"]["properties"]["name"] = {"type": "string"}
    new["$defs"]["Node"]["required"] = ["name"]
    assert_incompatible(old, new, "$.name: required property added")


def test_unresolvable_or_external_refs_raise() -> None:
    with pytest.raises(ValueError, match="unresolvable"):
        incompatibilities(obj(a={"$ref": "#/$defs/Missing"}), obj())
    with pytest.raises(ValueError, match="only local"):
        incompatibilities(obj(a={"$ref": "https://example.com/s.json"}), obj())


def test_nested_objects_are_compared() -> None:
    old = obj(a=obj(b=obj(c={"type": "string"})))
    assert_compatible(old, obj(a=obj(b=obj(c={"type": "string"}, d={"type": "string"}))))
    assert_incompatible(old, obj(a=obj(b=obj(c={"type": "integer"}))), "$.a.b.c: type changed")


def test_array_items_are_compared() -> None:
    old = with_prop({"type": "array", "items": {"type": "string"}})
    assert_compatible(old, with_prop({"type": "array", "items": {"type": "string"}}))
    assert_incompatible(
        old, with_prop({"type": "array", "items": {"type": "integer"}}), "$.a[]: type changed"
    )
    assert_incompatible(old, with_prop({"type": "array"}), "items removed")


def test_prefix_items_are_compared_by_position() -> None:
    old = with_prop({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]})
    assert_compatible(old, copy.deepcopy(old))
    swapped = with_prop({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]})
    assert_incompatible(old, swapped, "$.a[0]: type changed", "$.a[1]: type changed")
    shorter = with_prop({"type": "array", "prefixItems": [{"type": "string"}]})
    assert_incompatible(old, shorter, "prefixItems has 1 entries, was 2")


@pytest.mark.parametrize("key", ["anyOf", "oneOf"])
def test_union_alternatives_are_compared_by_position(key: str) -> None:
    old = with_prop({key: [{"type": "string"}, {"type": "integer"}]})
    assert_compatible(old, with_prop({key: [{"type": "string"}, {"type": "integer"}]}))
    assert_incompatible(
        old,
        with_prop({key: [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}),
        f"{key} has 3 alternatives, was 2",
    )
    assert_incompatible(
        old,
        with_prop({key: [{"type": "string", "maxLength": 2}, {"type": "integer"}]}),
        f"$.a.{key}[0]: maxLength added",
    )


def test_union_versus_single_type_is_a_type_change() -> None:
    old = with_prop({"type": "string"})
    new = with_prop({"anyOf": [{"type": "string"}, {"type": "integer"}]})
    assert_incompatible(old, new, "type changed from string to anyOf")


def test_additional_properties_changes_are_incompatible() -> None:
    old = obj()
    assert_compatible(old, {**obj(), "additionalProperties": True})
    assert_incompatible(old, {**obj(), "additionalProperties": False}, "additionalProperties")
    typed = {**obj(), "additionalProperties": {"type": "string"}}
    assert_compatible(typed, copy.deepcopy(typed))
    assert_incompatible(
        typed, {**obj(), "additionalProperties": {"type": "integer"}}, "$.*: type changed"
    )


def test_unknown_keywords_are_compared_strictly() -> None:
    old = with_prop({"type": "number", "multipleOf": 0.5})
    assert_compatible(old, copy.deepcopy(old))
    assert_incompatible(old, with_prop({"type": "number", "multipleOf": 0.25}), "multipleOf")


# the function itself


def test_inputs_are_not_modified_and_real_contracts_are_self_compatible() -> None:
    for info in REGISTRY:
        old = json_schema(info)
        new = json_schema(info)
        frozen = copy.deepcopy(old)
        assert incompatibilities(old, new) == []
        assert old == frozen


def test_every_problem_names_a_path() -> None:
    old = obj(("a", "b"), a={"type": "string"}, b={"type": "integer", "minimum": 0})
    new = obj(("a", "c"), a={"type": "integer"}, c={"type": "string"})
    problems = incompatibilities(old, new)
    assert problems == [
        "$.a: type changed from string to integer",
        "$.b: property removed",
        "$.c: required property added",
    ]
