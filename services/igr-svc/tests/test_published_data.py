"""igr-svc against the regulator's published data: importing its beneficiary counts and
feeding its complaint counts as complaint.registered events reproduces every monthly IGR
published from 2018-06 on, to the cent, with the beneficiary month it used."""

from __future__ import annotations

import gzip
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from igr_svc import domain
from igr_svc import repository as repo
from igr_svc.consumers import IgrHandlers
from igr_svc.importer import parse_open_data, store_open_data
from igr_svc.imports import OpenDataRow, read_open_data
from igr_svc.runtime import Runtime
from rn623_events.contracts.protocols import ComplaintRegistered
from rn623_events.envelope import make_envelope

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
# <repo>/../shared/igr-data: CI clones the repository with shared/ beside it
DATA = REPO_ROOT.parent / "shared" / "igr-data" / "ans_igr_v2023_snapshot_2024-06-07.csv.gz"
FIRST_TWO_DECIMALS = date(2018, 6, 1)  # earlier months were published with one decimal
BATCH = 5000


def published_lines() -> Iterator[str]:
    """The open-data file's lines."""
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as handle:
        yield from handle


def complaint_events(rows: list[OpenDataRow]) -> Iterator[ComplaintRegistered]:
    """As many NIP complaint events per published row as it counts, dated mid-month
    (Brasília); the copies of one row are the same event object (the counting reads
    only the fields they share)."""
    for n, row in enumerate(rows):
        assert row.month is not None
        assert row.complaints is not None
        received = datetime(row.month.year, row.month.month, 15, 12, tzinfo=domain.BRASILIA)
        event = ComplaintRegistered(
            protocol_number=f"{row.ans_registry}{row.month:%Y%m%d}{n % 1_000_000:06d}",
            ans_registry=row.ans_registry,
            complaint_id=uuid.uuid4(),
            source="nip",
            received_at=received,
            registered_at=received,
            coverage=row.coverage,
        )
        for _ in range(row.complaints):
            yield event


@pytest.mark.skipif(not DATA.is_file(), reason=f"published data not found at {DATA}")
async def test_every_published_monthly_igr_since_2018_06_is_reproduced(runtime: Runtime) -> None:
    async with runtime.uow() as uow:
        summary = await store_open_data(
            uow, parse_open_data(published_lines()), runtime.clock.now()
        )
        await uow.commit()
    assert summary.rows == 127_520
    rows = [
        r for r in read_open_data(published_lines()) if r.month and r.month >= FIRST_TWO_DECIMALS
    ]
    assert len(rows) == 76_913

    handlers = IgrHandlers(runtime)
    batch: list[tuple[ComplaintRegistered, object]] = []
    fed = 0
    envelope = make_envelope(
        ComplaintRegistered(
            protocol_number="00000020180601000001",
            ans_registry="000000",
            complaint_id=uuid.uuid4(),
            source="nip",
            received_at=runtime.clock.now(),
            registered_at=runtime.clock.now(),
        ),
        source="protocol-svc",
        time=runtime.clock.now(),
    )  # the handler reads only the events; one envelope stands for all

    async def flush() -> None:
        async with runtime.uow() as uow:
            await handlers.complaints(batch, uow)  # type: ignore[arg-type]
            await uow.commit()
        batch.clear()

    for event in complaint_events(rows):
        batch.append((event, envelope))
        fed += 1
        if len(batch) == BATCH:
            await flush()
    await flush()
    assert fed == sum(r.complaints or 0 for r in rows) == 1_201_884

    by_quarter: dict[str, list[OpenDataRow]] = defaultdict(list)
    for row in rows:
        assert row.month is not None
        by_quarter[domain.quarter_of(row.month)].append(row)
    mismatches = []
    for quarter, published in sorted(by_quarter.items()):
        async with runtime.sessions() as session:
            inputs = await repo.load_inputs(session, quarter)  # every operator at once
        computed = {
            (ans, coverage, month["month"]): month
            for ans, data in inputs.items()
            for coverage in domain.COVERAGES[data.segment]
            for month in domain.month_figures(data, coverage)
        }
        for row in published:
            assert row.month is not None
            got = computed[(row.ans_registry, row.coverage, domain.month_text(row.month))]
            expected = (
                row.complaints,
                str(row.igr),
                domain.month_text(row.beneficiaries_month),
            )
            actual = (got["complaints"], got["igr"], got["beneficiaries_month"])
            if actual != expected:
                mismatches.append((row.ans_registry, row.coverage, row.month, expected, actual))
    assert mismatches == []
