"""Every file a Dockerfile copies from the build context is sent to the builder: none is
left out by ``.dockerignore`` (a missing one fails the image build, not these tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    [*ROOT.glob("services/*/Dockerfile"), *(ROOT / "deploy" / "docker").glob("*Dockerfile")]
)


def _pattern(rule: str) -> re.Pattern[str]:
    """A .dockerignore rule as a regex over slash paths (Go's filepath.Match, plus ``**``)."""
    parts = []
    for segment in rule.strip("/").split("/"):
        if segment == "**":
            parts.append("(?:[^/]+/)*")
            continue
        body = "".join(
            "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment
        )
        parts.append(body + "/")
    return re.compile("".join(parts).removesuffix("/") + "$")


def _rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) for each rule of .dockerignore, in order."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((not keep, _pattern(line.lstrip("!"))))
    return rules


def _excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last rule matching the path or one of its parents decides."""
    parents = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    decision = False
    for excludes, pattern in rules:
        if any(pattern.match(p) for p in parents):
            decision = excludes
    return decision


def _copied(dockerfile: Path) -> list[str]:
    """The build-context sources of a Dockerfile's COPY instructions (not ``--from``)."""
    sources = []
    for line in dockerfile.read_text("utf-8").splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        sources.extend(args[:-1])
    return sources


def test_the_matcher_follows_dockerignore_rules() -> None:
    rules = [(True, _pattern("e2e")), (True, _pattern("**/tests")), (True, _pattern("**/*.md"))]
    rules.append((False, _pattern("README.md")))
    assert _excluded("e2e/pyproject.toml", rules)
    assert _excluded("services/a/tests/test_x.py", rules)
    assert _excluded("tests/x.py", rules)
    assert _excluded("docs/a.md", rules)
    assert not _excluded("README.md", rules)
    assert not _excluded("libs/e2e/x.py", rules)  # a root rule is not matched deeper
    assert _pattern("a/**/b").match("a/b")
    assert _pattern("a/**/b").match("a/x/y/b")
    rules.append((False, _pattern("e2e/pyproject.toml")))
    assert not _excluded("e2e/pyproject.toml", rules)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_copied_file_is_in_the_build_context(dockerfile: Path) -> None:
    rules = _rules()
    sources = _copied(dockerfile)
    assert sources, f"{dockerfile}: no COPY found"
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: no such file"
        assert not _excluded(source, rules), (
            f"{dockerfile}: COPY {source}: left out by .dockerignore"
        )
