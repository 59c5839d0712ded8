"""Rulebook micro-benchmark: due-date computations per second on one core.

Builds a São Paulo-city calendar (national + SP state + municipal holidays), warms
it, then times ``due_at`` over random aware start instants spread over 2025-2027
(UTC and Brazilian zones) with N drawn from 1..10, in a single thread, and the full
``deadline_for`` (rules in force for a random demand type + calendar). Also times
the first (cold) build of a calendar's day index, ``add_business_days`` and
``business_days_between``.

Prints the figures and merges them into ``bench/results.json`` under
``rulebook`` (other keys are kept).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from benchlib import machine_info, save_results
from rn623_rulebook import DemandType, deadline_for, load_ruleset
from rn623_rulebook.calendars import BusinessCalendar, CalendarSpec, calendar_for

TARGET_PER_S = 200_000


def best_rate(run: Callable[[], int], repeat: int) -> tuple[float, float]:
    """Run ``run`` (which returns how many operations it did) and return best and median rates."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = run()
        rates.append(done / (time.perf_counter() - started))
    return max(rates), statistics.median(rates)


def measure(iterations: int, repeat: int, seed: int) -> dict[str, Any]:
    """Time the calendar operations and return the figures."""
    rng = random.Random(seed)  # noqa: S311 - benchmark inputs
    zones = [
        UTC,
        *(ZoneInfo(z) for z in ("America/Sao_Paulo", "America/Manaus", "America/Noronha")),
    ]
    first = datetime(2025, 1, 1, tzinfo=UTC)
    span = int((datetime(2028, 1, 1, tzinfo=UTC) - first).total_seconds())
    starts = [
        (first + timedelta(seconds=rng.randrange(span))).astimezone(rng.choice(zones))
        for _ in range(iterations)
    ]
    ns = [rng.randint(1, 10) for _ in range(iterations)]
    pairs = list(zip(starts, ns, strict=True))
    days = [s.date() for s in starts]
    later = [d + timedelta(days=rng.randint(0, 30)) for d in days]

    spec = CalendarSpec(municipality_ibge="3550308")
    started = time.perf_counter()
    cold = BusinessCalendar(spec)
    cold.is_business_day(date(2026, 1, 2))
    cold_build_ms = (time.perf_counter() - started) * 1000

    calendar = calendar_for(spec)
    for start, n in pairs[:1000]:  # warm: index built, caches hot
        calendar.due_at(start, n)

    def due_at() -> int:
        for start, n in pairs:
            calendar.due_at(start, n)
        return len(pairs)

    def add() -> int:
        for day, n in zip(days, ns, strict=True):
            calendar.add_business_days(day, n)
        return len(days)

    def between() -> int:
        for a, b in zip(days, later, strict=True):
            calendar.business_days_between(a, b)
        return len(days)

    kinds = [rng.choice(list(DemandType)) for _ in range(iterations)]
    in_force = [s for s in starts if s.astimezone(calendar.tz).date() >= date(2025, 7, 1)]
    demands = list(zip(kinds, in_force, strict=False))
    load_ruleset()

    def full_deadline() -> int:
        for kind, start in demands:
            deadline_for(kind, None, start, calendar)
        return len(demands)

    due_best, due_median = best_rate(due_at, repeat)
    deadline_best, deadline_median = best_rate(full_deadline, repeat)
    add_best, add_median = best_rate(add, repeat)
    between_best, between_median = best_rate(between, repeat)
    return {
        "calendar": "São Paulo city (national + SP + municipal), warm",
        "iterations": iterations,
        "repeat": repeat,
        "starts": "random instants 2025-2027, UTC/Sao_Paulo/Manaus/Noronha; N in 1..10",
        "due_at_per_s": due_best,
        "due_at_per_s_median": due_median,
        "due_at_target_per_s": TARGET_PER_S,
        "due_at_meets_target": due_best >= TARGET_PER_S,
        "deadline_for_per_s": deadline_best,
        "deadline_for_per_s_median": deadline_median,
        "add_business_days_per_s": add_best,
        "add_business_days_per_s_median": add_median,
        "business_days_between_per_s": between_best,
        "business_days_between_per_s_median": between_median,
        "cold_index_build_ms": cold_build_ms,
        "machine": machine_info(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Measure, print and merge into bench/results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=623)
    args = parser.parse_args(argv)
    figures = measure(args.iterations, args.repeat, args.seed)
    verdict = "met" if figures["due_at_meets_target"] else "NOT met"
    print(
        f"due_at: {figures['due_at_per_s']:,.0f}/s "
        f"(median {figures['due_at_per_s_median']:,.0f}/s; target {TARGET_PER_S:,}/s {verdict})"
    )
    print(
        "deadline_for (rules in force + calendar, every demand type): "
        f"{figures['deadline_for_per_s']:,.0f}/s "
        f"(median {figures['deadline_for_per_s_median']:,.0f}/s)"
    )
    print(f"add_business_days: {figures['add_business_days_per_s']:,.0f}/s")
    print(f"business_days_between: {figures['business_days_between_per_s']:,.0f}/s")
    print(f"cold index build (2015-2040): {figures['cold_index_build_ms']:.1f} ms")
    print(f"written to {save_results({'rulebook': figures})}")


if __name__ == "__main__":
    main()
