"""Gauges of the open quarter per operator and coverage: the IGR médio so far and its
projection, for dashboards and alerts (refreshed by the worker from the counters)."""

from __future__ import annotations

from prometheus_client import Gauge

from igr_svc import domain
from igr_svc import repository as repo
from igr_svc.runtime import Runtime

IGR_SO_FAR = Gauge(
    "igr_medio_current", "IGR médio of the open quarter so far", ["operator", "coverage"]
)
IGR_PROJECTED = Gauge(
    "igr_medio_projected", "Projected IGR médio of the open quarter", ["operator", "coverage"]
)


async def refresh_gauges(rt: Runtime) -> int:
    """Set both gauges for every operator from one bulk read; return the operators set."""
    now = rt.clock.now()
    quarter = domain.quarter_of(domain.month_of(now))
    async with rt.sessions() as session:
        inputs = await repo.load_inputs(session, quarter, method=rt.method, now=now)
    so_far: dict[tuple[str, str], float] = {}
    projected: dict[tuple[str, str], float] = {}
    for ans, data in inputs.items():
        for coverage in domain.COVERAGES[data.segment]:
            medio = domain.igr_medio(domain.month_figures(data, coverage), rt.method)
            if medio is not None:
                so_far[(ans, coverage)] = float(medio)
        for entry in domain.projection(data, now)["coverages"]:
            if entry["igr_medio"] is not None:
                projected[(ans, entry["coverage"])] = float(entry["igr_medio"])
    for gauge, values in ((IGR_SO_FAR, so_far), (IGR_PROJECTED, projected)):
        gauge.clear()
        for (ans, coverage), figure in values.items():
            gauge.labels(ans, coverage).set(figure)
    return len(inputs)
