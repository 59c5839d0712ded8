"""Schemathesis against one service: its configuration, the CLI in a subprocess, and the
NDJSON event stream it writes turned into findings.

The token reaches schemathesis through an environment variable named in the configuration
file, never on the command line. Findings name the operation, the failed check and the
status; never a response body (a fuzzer's admin token sees every tenant's data).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTH_ENV_NAME = "RN623_E2E_FUZZ_AUTH"
RUN_TIMEOUT = 600.0  # seconds for one service, whatever max_examples is
REQUEST_TIMEOUT = 10.0

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
# Left out of fuzzing:
# - provider callbacks (/v1/webhooks/...) authenticate by the provider's signature, not the
#   bearer token: fuzzed callbacks would only test the signature check, which the security
#   check tests directly;
# - closing an IGR quarter freezes every operator's figures of a quarter that has ended,
#   possibly days before the closer would (late complaints then become revisions): fuzzed
#   as an all-operators admin it would change the results of the run under test. Its input
#   is one pattern-checked path parameter; its authorization is checked by the security
#   and tenant-isolation checks.
EXCLUDED_PATHS = r"^/v1/(webhooks/|igr/quarters/[^/]+/close$)"
# Left out on purpose: response_headers_conformance (no operation documents headers),
# negative_data_rejection and positive_data_acceptance (a body naming an unknown operator
# or protocol is schema-valid but refused with 404/422 by design), use_after_free and
# ensure_resource_availability (resources are never deleted, only released), ignored_auth
# (the security check sends every kind of bad token to every operation).


@dataclass
class FuzzResult:
    """What one schemathesis run did and found."""

    requests: int = 0
    negative_cases: int = 0  # test cases schemathesis generated as invalid on purpose
    failures: list[str] = field(default_factory=list)


def schemathesis_command() -> list[str]:
    """The schemathesis CLI of the running interpreter's environment."""
    script = Path(sys.executable).with_name("schemathesis")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()"]


def config_text(max_examples: int) -> str:
    """The schemathesis.toml of a run (the bearer token comes from the environment)."""
    return "\n".join(
        [
            "color = false",
            f"request-timeout = {REQUEST_TIMEOUT}",
            "[generation]",
            f"max-examples = {max_examples}",
            "[auth.openapi.bearerAuth]",
            f'bearer = "${{{AUTH_ENV_NAME}}}"',
            "",
        ]
    )


def fuzz_service(
    service: str, url: str, token: str, *, max_examples: int, workdir: Path
) -> FuzzResult:
    """Run schemathesis against ``service`` at ``url`` and read its findings."""
    folder = workdir / f"schemathesis-{service}"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "schemathesis.toml"
    config.write_text(config_text(max_examples), encoding="utf-8")
    events, junit = folder / "events.ndjson", folder / "junit.xml"
    events.unlink(missing_ok=True)
    command = [
        *schemathesis_command(),
        "--config-file",
        str(config),
        "run",
        f"{url.rstrip('/')}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--exclude-path-regex",
        EXCLUDED_PATHS,
        "--max-examples",
        str(max_examples),
        "--report",
        "ndjson,junit",
        "--report-ndjson-path",
        str(events),
        "--report-junit-path",
        str(junit),
    ]
    env = {**os.environ, AUTH_ENV_NAME: token, "NO_COLOR": "1"}
    log = folder / "output.txt"
    try:
        with log.open("w", encoding="utf-8") as output:
            completed = subprocess.run(
                command,
                cwd=folder,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                check=False,
            )
    except subprocess.TimeoutExpired:
        result = read_events(service, events) if events.exists() else FuzzResult()
        result.failures.append(f"{service}: schemathesis did not finish in {RUN_TIMEOUT:.0f} s")
        return result
    if not events.exists():
        return FuzzResult(
            failures=[
                f"{service}: schemathesis exited with {completed.returncode} before testing "
                f"(see {log})"
            ]
        )
    result = read_events(service, events)
    if completed.returncode not in (0, 1):  # 1: failures found, reported from the events
        result.failures.append(
            f"{service}: schemathesis exited with {completed.returncode} (see {log})"
        )
    return result


def read_events(service: str, path: Path) -> FuzzResult:
    """The findings of a schemathesis NDJSON event stream."""
    with path.open(encoding="utf-8") as stream:
        return findings_of(service, (json.loads(line) for line in stream if line.strip()))


def findings_of(service: str, events: Iterable[Mapping[str, Any]]) -> FuzzResult:
    """Requests, negative cases and distinct failures of a stream of schemathesis events."""
    result = FuzzResult()
    seed: object = None
    seen: set[tuple[str, ...]] = set()
    problems: list[tuple[str, ...]] = []
    for event in events:
        for kind, payload in event.items():
            if kind == "Initialize":
                seed = payload.get("seed")
            elif kind == "ScenarioFinished":
                _scenario(payload.get("recorder") or {}, result, seen, problems)
            elif kind in ("NonFatalError", "FatalError"):
                label = payload.get("label") or "schema"
                info = payload.get("info") or {}
                title = info.get("title") or info.get("type") or kind
                problems.append((str(label), f"{kind}: {title}"))
    suffix = f" [schemathesis seed {seed}]" if seed is not None else ""
    for problem in problems:
        result.failures.append(f"{service} {' '.join(problem)}{suffix}")
    return result


def _scenario(
    recorder: Mapping[str, Any],
    result: FuzzResult,
    seen: set[tuple[str, ...]],
    problems: list[tuple[str, ...]],
) -> None:
    """Count one scenario's requests and cases, and collect its distinct failures."""
    interactions = recorder.get("interactions") or {}
    result.requests += len(interactions)
    for case in (recorder.get("cases") or {}).values():
        generation = ((case.get("value") or {}).get("meta") or {}).get("generation") or {}
        result.negative_cases += int(generation.get("mode") == "negative")
    for case_id, checks in (recorder.get("checks") or {}).items():
        response = (interactions.get(case_id) or {}).get("response") or {}
        status = response.get("status_code")
        for check in checks:
            if check.get("status") != "failure":
                continue
            failure = (check.get("failure_info") or {}).get("failure") or {}
            operation = str(failure.get("operation") or recorder.get("label") or "?")
            code = str(failure.get("code") or check.get("name") or "?")
            title = str(failure.get("title") or check.get("name") or "failure")
            key = (operation, code, title, str(status))
            if key in seen:
                continue
            seen.add(key)
            got = f" (got {status})" if status is not None else ""
            problems.append((f"{operation}:", f"{code} {title}{got}"))
