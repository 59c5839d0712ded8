"""``rn623-e2e`` (``make e2e``): start the platform, play the day, inject the faults, run the
security checks, and write ``e2e/report.json``."""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rn623_e2e.platform import REPO_ROOT, Platform
from rn623_e2e.report import Report

console = Console(stderr=True)
REPORTS_DIR = REPO_ROOT / "e2e"
DEFAULT_REPORT = REPORTS_DIR / "report.json"


@dataclass(frozen=True)
class Mode:
    """How big a run is: ``full`` for ``make e2e``, ``quick`` for CI inside ``make test``."""

    name: str
    per_channel: int  # protocols per channel and operator in the day
    fault_load: int  # protocols opened per fault
    broker_freeze_seconds: float
    provider_outage_seconds: float
    fuzz_examples: int


MODES = {
    "full": Mode("full", 10, 200, 30.0, 60.0, 25),
    "quick": Mode("quick", 2, 40, 5.0, 5.0, 3),
}


def run(mode: Mode, report_path: Path, workdir: Path | None, parts: list[str]) -> Report:
    """Run the suite in a fresh platform; return the report (also written to ``report_path``)."""
    base = workdir or Path(tempfile.mkdtemp(prefix="rn623-e2e-"))
    report = Report(mode.name)
    platform = Platform(base)
    personal: list[str] = []
    started = time.monotonic()
    try:
        platform.start()
        report.durations["startup"] = time.monotonic() - started
        asyncio.run(_parts(platform, report, mode, parts, personal))
    finally:
        platform.stop()
        _scan_logs(platform, report, personal)
        report.write(report_path)
        if workdir is None and not report.failures:
            shutil.rmtree(base, ignore_errors=True)
        elif report.failures:
            console.print(f"logs and data of the failed run kept in {base}")
    return report


def _scan_logs(platform: Platform, report: Report, personal: list[str]) -> None:
    """Search every log of the platform for the personal data the run sent.

    The emulators' log is left out: it stands for the providers, who receive the
    addresses by design.
    """
    from rn623_e2e.security import scan_logs

    began = time.monotonic()
    logs = [path for path in platform.log_files() if path.name != "provider-emulators.log"]
    findings = scan_logs(logs, personal)
    report.durations["log scan"] = time.monotonic() - began
    report.check(
        "security",
        f"{len(logs)} log files hold none of the {len(set(personal))} personal values sent",
        bool(personal) and not findings.failures,
        observed=findings.failures[:50],
    )


async def _parts(
    platform: Platform, report: Report, mode: Mode, parts: list[str], personal: list[str]
) -> None:
    """The selected parts, in order, each timed; ``personal`` collects the personal data sent."""
    from rn623_e2e.day import Day
    from rn623_e2e.faults import Faults

    async def day() -> None:
        played = Day(platform, report, per_channel=mode.per_channel, seed=623)
        try:
            await played.run()
        finally:
            personal.extend(played.personal)

    async def faults() -> None:
        injected = Faults(platform, report, load=mode.fault_load, seed=624)
        try:
            await injected.run(mode.broker_freeze_seconds, mode.provider_outage_seconds)
        finally:
            personal.extend(injected.personal)
            await injected.aclose()

    async def security() -> None:
        await _security(platform, report, mode)

    steps: dict[str, Callable[[], Awaitable[None]]] = {
        "day": day,
        "faults": faults,
        "security": security,
    }
    for name in parts:
        began = time.monotonic()
        console.print(f"[bold]▶ {name}[/bold]")
        try:
            await steps[name]()
        except Exception as exc:  # a part that crashes is a failed check, not a lost report
            report.check(name, f"{name} ran to the end", False, detail=repr(exc)[:500])
        report.durations[name] = time.monotonic() - began
    dead = platform.dead_processes()
    report.check("platform", "no process died on its own", not dead, observed=dead)


async def _security(platform: Platform, report: Report, mode: Mode) -> None:
    """Bad tokens on every operation, tenant isolation on every resource, and fuzzing."""
    from rn623_e2e import security

    first = random.SystemRandom().randrange(500000, 599000)
    operator_a, operator_b = str(first), str(first + 1)
    findings = {
        "every operation refuses missing, expired, forged and wrong-scope tokens": (
            await security.check_token_rejection(platform.urls, platform.secret)
        ),
        "operator B can neither read nor change operator A's resources": (
            await security.check_tenant_isolation(
                platform.urls, platform.secret, operator_a, operator_b
            )
        ),
        f"schemathesis ({mode.fuzz_examples} examples per operation): no 5xx, "
        "responses conform to the OpenAPI": await asyncio.to_thread(
            security.run_schemathesis,
            platform.urls,
            platform.secret,
            max_examples=mode.fuzz_examples,
            workdir=platform.workdir / "schemathesis",
        ),
    }
    for name, found in findings.items():
        report.figures.bad_inputs_tried += found.bad_inputs_tried
        report.check(
            "security",
            f"{name} ({found.requests_tried} requests)",
            found.requests_tried > 0 and not found.failures,
            observed=found.failures[:50],
        )


def print_summary(report: Report, path: Path) -> None:
    """Print the checks per section and the figures."""
    table = Table(title=f"end-to-end ({report.mode})")
    table.add_column("section")
    table.add_column("checks", justify="right")
    table.add_column("failed", justify="right")
    for section, checks in report.sections.items():
        failed = sum(1 for c in checks if not c.ok)
        table.add_row(section, str(len(checks)), f"[red]{failed}[/red]" if failed else "0")
    console.print(table)
    console.print(vars(report.figures))
    for failure in report.failures:
        console.print(f"✗ {failure}", markup=False, style="red")
    console.print(f"report: {path}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short CI version")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--workdir", type=Path, help="keep the run's data and logs here")
    parser.add_argument(
        "--parts", default="day,faults,security", help="comma-separated parts to run"
    )
    args = parser.parse_args(argv)
    mode = MODES["quick" if args.quick else "full"]
    report = run(mode, args.report, args.workdir, [p for p in args.parts.split(",") if p])
    print_summary(report, args.report)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
