"""Policy: hardened, probed, bounded workloads; every service fully deployed; every
alert and dashboard metric actually exported by some service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rn623_events.topics import TOPICS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RULES = K8S / "base" / "monitoring" / "prometheus-rules.yaml"
DASHBOARDS = K8S / "base" / "monitoring" / "dashboards"

# Series Prometheus itself creates for every target.
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "le", "inf", "nan",
}  # fmt: skip


def _pods(rendered: dict[str, list[dict[str, Any]]], kinds: tuple[str, ...]) -> list[Any]:
    return [
        (env, d, d["spec"]["template"]["spec"])
        for env, docs in rendered.items()
        for d in docs
        if d["kind"] in kinds
    ]


def test_every_container_is_hardened_and_bounded(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for env, doc, pod in _pods(rendered, ("Deployment", "Job")):
        where = f"{env} {doc['kind']}/{doc['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        assert pod.get("serviceAccountName") == doc["metadata"]["labels"]["app.kubernetes.io/name"]
        mounts_tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert isinstance(sc["runAsUser"], int), where
            assert sc["runAsUser"] > 0, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert any(
                m["mountPath"] == "/tmp" and m["name"] in mounts_tmp
                for m in container["volumeMounts"]
            ), where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
            assert not container["image"].endswith(":latest") or env == "base", where


def test_api_and_worker_deployments_have_probes(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployments = list(_pods(rendered, ("Deployment",)))
    roles = {doc["metadata"]["name"].rsplit("-", 1)[1] for _, doc, _ in deployments}
    assert roles == {"api", "worker"}
    for env, doc, pod in deployments:
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", (env, doc)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", (env, doc)
        assert container["args"] == [doc["metadata"]["name"].rsplit("-", 1)[1]]


def test_every_deployment_has_an_hpa_and_a_pdb(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for env, docs in rendered.items():
        deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
        hpas = {
            d["spec"]["scaleTargetRef"]["name"]: d
            for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"
        }
        pdbs = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
        assert deployments == set(hpas) == pdbs, env
        for name, hpa in hpas.items():
            if name.endswith("-worker"):
                consumer = name.removesuffix("-worker")
                limit = min(t.partitions for t in TOPICS if consumer in t.consumers)
                assert hpa["spec"]["maxReplicas"] <= limit, (env, name)
            else:
                assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_every_service_is_deployed_everywhere(
    services: list[Any], rendered: dict[str, list[dict[str, Any]]]
) -> None:
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text("utf-8"))
    for svc in services:
        dockerfile = ROOT / "services" / svc.name / "Dockerfile"
        assert dockerfile.is_file(), f"{svc.name}: no Dockerfile"
        text = dockerfile.read_text("utf-8")
        assert f"--package {svc.name}" in text
        assert "--frozen" in text
        assert "--no-dev" in text
        assert re.search(r"^USER [0-9]+:[0-9]+$", text, re.M), f"{svc.name}: non-numeric USER"
        assert (K8S / "base" / svc.name / "kustomization.yaml").is_file()
        assert svc.name in base["resources"]
        for env, docs in rendered.items():
            names = {(d["kind"], d["metadata"]["name"]) for d in docs}
            for expected in (
                ("Deployment", f"{svc.name}-api"),
                ("Deployment", f"{svc.name}-worker"),
                ("Service", f"{svc.name}-api"),
                ("Job", f"{svc.name}-migrate"),
                ("ServiceAccount", svc.name),
                ("NetworkPolicy", svc.name),
                ("ServiceMonitor", svc.name),
            ):
                assert expected in names, (env, expected)


def test_every_catalogued_topic_has_a_kafka_topic(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for env, docs in rendered.items():
        topics = {d["spec"]["topicName"] for d in docs if d["kind"] == "KafkaTopic"}
        assert topics == {t.name for t in TOPICS}, env


def test_secrets_are_referenced_not_committed(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for env, docs in rendered.items():
        assert not [d for d in docs if d["kind"] == "Secret"], env


# ------------------------------------------------------------------ metrics


def exported_metrics() -> set[str]:
    """Series names the services export, from the prometheus_client calls in the sources."""
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"']([a-zA-Z_:][\w:]*)[\"']")
    names: set[str] = set()
    for source in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for kind, name in pattern.findall(source.read_text("utf-8")):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            elif kind == "Gauge":
                names.add(name)
            else:
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count", name})
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, grouping and functions removed)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\"[^\"]*\"", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*(?=\s*(\(?))", expr):
        word = match.group(0)
        follows = expr[match.end() :].lstrip()[:1]
        if follows == "(" or word.lower() in PROMQL_WORDS or word.startswith("$"):
            continue
        names.add(word)
    return names


def test_metric_name_extraction() -> None:
    assert metric_names(
        'sum by (operator, kind) (increase(deadline_breaches_total{x="a"}[10m])) > 0'
    ) == {"deadline_breaches_total"}
    assert metric_names(
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
    ) == {"http_request_duration_seconds_bucket"}


def _alert_exprs() -> list[tuple[str, str]]:
    rule = yaml.safe_load(RULES.read_text("utf-8"))
    return [
        (r.get("alert") or r.get("record"), r["expr"])
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    ]


def test_every_alert_metric_is_exported() -> None:
    exported = exported_metrics() | BUILTIN_SERIES
    alerts = _alert_exprs()
    assert len(alerts) >= 10
    for alert, expr in alerts:
        used = metric_names(expr)
        assert used, (alert, expr)
        missing = used - exported
        assert not missing, f"{alert} uses metrics no service exports: {missing}"


def test_required_alerts_exist() -> None:
    metrics = set().union(*(metric_names(e) for _, e in _alert_exprs()))
    for required in (
        "deadline_breaches_total",
        "deadline_warnings_total",
        "consumer_lag",
        "consumer_dead_lettered_total",
        "outbox_oldest_unpublished_age_seconds",
        "outbox_depth",
        "retention_access_requests_overdue",
        "retention_purges_pending_confirmation",
    ):
        assert required in metrics, required


def test_every_dashboard_metric_is_exported() -> None:
    exported = exported_metrics() | BUILTIN_SERIES
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    assert len(dashboards) >= 2
    for path in dashboards:
        dashboard = json.loads(path.read_text("utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                missing = metric_names(target["expr"]) - exported
                assert not missing, f"{path.name} / {panel['title']}: {missing}"
