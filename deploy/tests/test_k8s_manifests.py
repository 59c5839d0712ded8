"""Every manifest of every overlay validates offline: built-in kinds against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict), CRDs against their vendored
schemas (deploy/tests/schemas, sources in SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.32"
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafkatopic-kafka.strimzi.io-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
}


def _crd_validator(file: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / file).read_text("utf-8"))
    return jsonschema.Draft7Validator(schema)


def _id(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def test_every_overlay_renders(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(rendered) >= {"base", "dev", "prod"}
    for env, docs in rendered.items():
        assert docs, env
        names = [
            (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
            for d in docs
        ]
        assert len(names) == len(set(names)), f"{env}: duplicate resources"


def test_builtin_kinds_validate_against_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    errors = []
    checked = 0
    for env, docs in rendered.items():
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
                continue
            try:
                kv.validate(doc, KUBERNETES_VERSION, strict=True)
                checked += 1
            except kv.ValidationError as exc:
                errors.append(f"{env} {_id(doc)}: {exc.message} at {list(exc.path)}")
            except kv.SchemaNotFoundError:
                errors.append(f"{env} {_id(doc)}: unknown kind {doc['apiVersion']} {doc['kind']}")
    assert not errors, "\n".join(errors)
    assert checked > 0


def test_custom_resources_validate_against_their_crd_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    validators = {key: _crd_validator(file) for key, file in CRD_SCHEMAS.items()}
    errors = []
    seen = set()
    for env, docs in rendered.items():
        for doc in docs:
            key = (doc["apiVersion"], doc["kind"])
            if key not in validators:
                continue
            seen.add(key[1])
            assert doc["metadata"].get("name"), f"{env} {key}: no name"
            for error in validators[key].iter_errors(doc):
                errors.append(f"{env} {_id(doc)}: {error.message} at {list(error.path)}")
    assert not errors, "\n".join(errors)
    assert seen == {"KafkaTopic", "ServiceMonitor", "PrometheusRule"}


def test_no_unexpected_custom_resources(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in rendered.values():
        for doc in docs:
            group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
            if "." in group and not group.endswith("k8s.io"):
                assert (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS, _id(doc)


def test_vendored_schemas_name_their_source() -> None:
    sources = (SCHEMAS / "SOURCES.md").read_text("utf-8")
    for file in [*CRD_SCHEMAS.values(), "compose-spec.json"]:
        assert f"`{file}`" in sources
    for file in CRD_SCHEMAS.values():
        assert "x-source-url" in json.loads((SCHEMAS / file).read_text("utf-8"))


def test_overlays_set_their_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    expected = {"dev": "rn623-dev", "prod": "rn623", "base": "rn623"}
    for env, namespace in expected.items():
        for doc in rendered[env]:
            if doc["kind"] == "Namespace":
                assert doc["metadata"]["name"] == namespace
            else:
                assert doc["metadata"]["namespace"] == namespace, _id(doc)


def test_dev_overlay_patches_topics_for_one_broker(
    rendered: dict[str, list[dict[str, Any]]], patches_applied: bool
) -> None:
    if not patches_applied:
        pytest.skip("overlay patches need kubectl kustomize (the fallback does not patch)")
    topics = [d for d in rendered["dev"] if d["kind"] == "KafkaTopic"]
    assert topics
    for doc in topics:
        assert doc["spec"]["replicas"] == 1
        assert doc["spec"]["config"].get("min.insync.replicas", 1) == 1


def test_prod_overlay_pins_images_and_mounts_the_kafka_ca(
    rendered: dict[str, list[dict[str, Any]]], patches_applied: bool
) -> None:
    if not patches_applied:
        pytest.skip("overlay patches need kubectl kustomize (the fallback does not patch)")
    for doc in rendered["prod"]:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        image = pod["containers"][0]["image"]
        assert image.startswith("registry.example.com/")
        assert not image.endswith(":latest")
        assert "kafka-ca" in {v["name"] for v in pod["volumes"]}, _id(doc)


def test_rendered_output_is_plain_yaml(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # Round-trips: no Python-specific tags, nothing a YAML 1.1 loader would mangle.
    for docs in rendered.values():
        for doc in docs:
            assert yaml.safe_load(yaml.safe_dump(doc)) == doc
