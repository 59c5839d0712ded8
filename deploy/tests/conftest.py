"""Shared fixtures of the deployment tests: the generator module, the discovered
services and the rendered Kustomize overlays (offline, no cluster)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SCHEMAS = Path(__file__).resolve().parent / "schemas"


def load_generator() -> ModuleType:
    """Import deploy/generate.py (deploy/ is not a package)."""
    name = "rn623_deploy_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="session")
def services(generator: ModuleType) -> list[Any]:
    found = generator.discover_services()
    assert found, "no service under services/*/pyproject.toml"
    return found


# ------------------------------------------------------------------ rendering


def _kubectl_render(path: Path) -> list[dict[str, Any]] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _fallback_render(path: Path) -> list[dict[str, Any]]:
    """Pure-Python stand-in for kustomize: reads every resource file reachable from the
    kustomization, generates its ConfigMaps, applies namespace and images. Patches are
    not applied (the kubectl path covers them)."""
    kustomization = yaml.safe_load((path / "kustomization.yaml").read_text("utf-8"))
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (path / entry).resolve()
        if target.is_dir():
            docs.extend(_fallback_render(target))
        else:
            docs.extend(d for d in yaml.safe_load_all(target.read_text("utf-8")) if d)
    for generated in kustomization.get("configMapGenerator", []):
        if generated.get("behavior") == "merge":
            continue
        data = dict(line.split("=", 1) for line in generated.get("literals", []))
        for file in generated.get("files", []):
            data[Path(file).name] = (path / file).read_text("utf-8")
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generated["name"]},
                "data": data,
            }
        )
    images = {i["name"]: i for i in kustomization.get("images", [])}
    namespace = kustomization.get("namespace")
    for doc in docs:
        if namespace and doc["kind"] == "Namespace":
            doc["metadata"]["name"] = namespace
        elif namespace:
            doc["metadata"]["namespace"] = namespace
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            name, _, tag = container["image"].partition(":")
            if name in images:
                image = images[name]
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return docs


def render(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Render a kustomization: (how, documents)."""
    docs = _kubectl_render(path)
    if docs is not None:
        return "kubectl kustomize", docs
    try:
        return "python fallback", _fallback_render(path)
    except (OSError, KeyError, ValueError, yaml.YAMLError) as exc:
        pytest.skip(f"neither kubectl nor the fallback renderer can render {path}: {exc}")
        raise


_RENDERED: dict[str, tuple[str, list[dict[str, Any]]]] = {}


def _render_all() -> dict[str, tuple[str, list[dict[str, Any]]]]:
    if not _RENDERED:
        for name in OVERLAYS:
            _RENDERED[name] = render(K8S / "overlays" / name)
        _RENDERED["base"] = render(K8S / "base")
    return _RENDERED


@pytest.fixture(scope="session")
def rendered() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Every overlay (and the base) rendered once per session."""
    return {name: docs for name, (_, docs) in _render_all().items()}


@pytest.fixture(scope="session")
def patches_applied() -> bool:
    """Whether the overlays' patches were applied (kubectl), not just read (fallback)."""
    return all(how == "kubectl kustomize" for how, _ in _render_all().values())
