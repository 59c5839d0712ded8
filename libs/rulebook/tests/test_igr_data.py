"""monthly_igr against every IGR the regulator published (ANS open data, 2015-01 to 2024-05)."""

from __future__ import annotations

import csv
import gzip
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from rn623_rulebook.igr import monthly_igr

pytestmark = pytest.mark.unit

# <repo>/../shared/igr-data: CI clones the repo with shared/ beside it
REPO_ROOT = Path(__file__).resolve().parents[3]
DATA = REPO_ROOT.parent / "shared" / "igr-data" / "ans_igr_v2023_snapshot_2024-06-07.csv.gz"
TWO_DECIMALS_FROM = 201806  # earlier months were published with one decimal
ONE_DECIMAL = Decimal("0.1")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    if not DATA.exists():
        pytest.skip(f"published IGR snapshot not found at {DATA} (shared/ is not beside the repo)")
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def _published(row: dict[str, str]) -> Decimal:
    return Decimal(row["IGR"].replace(",", "."))


def _computed(row: dict[str, str]) -> Decimal | None:
    return monthly_igr(int(row["QTD_RECLAMACOES"]), int(row["QTD_BENEFICIARIOS"]))


def test_snapshot_is_complete(rows: list[dict[str, str]]) -> None:
    assert len(rows) == 127_520
    months = {row["COMPETENCIA"] for row in rows}
    assert (min(months), max(months)) == ("201501", "202405")


def test_every_two_decimal_month_matches(rows: list[dict[str, str]]) -> None:
    recent = [row for row in rows if int(row["COMPETENCIA"]) >= TWO_DECIMALS_FROM]
    assert len(recent) == 76_913
    mismatches = [
        (row["REGISTRO_ANS"], row["COMPETENCIA"], row["IGR"], _computed(row))
        for row in recent
        if _computed(row) != _published(row)
    ]
    assert not mismatches, f"{len(mismatches)} rows differ, e.g. {mismatches[:5]}"


def test_every_one_decimal_month_matches_once_rounded_again(rows: list[dict[str, str]]) -> None:
    """Before 2018-06 the published value is the 2-decimal IGR rounded half-even to 1 decimal.

    Rounding the exact ratio half-up to one decimal would miss 834 of these 50 607 rows
    (e.g. 2.053… published 2.0, 8.651… published 8.6): the regulator rounded twice.
    """
    older = [row for row in rows if int(row["COMPETENCIA"]) < TWO_DECIMALS_FROM]
    assert len(older) == 50_607
    mismatches = []
    for row in older:
        value = _computed(row)
        assert value is not None
        if value.quantize(ONE_DECIMAL, rounding=ROUND_HALF_EVEN) != _published(row):
            mismatches.append((row["REGISTRO_ANS"], row["COMPETENCIA"], row["IGR"], value))
    assert not mismatches, f"{len(mismatches)} rows differ, e.g. {mismatches[:5]}"
