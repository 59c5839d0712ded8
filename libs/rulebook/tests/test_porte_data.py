"""porte() against the porte the regulator published for every row of its IGR open data."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest

from rn623_rulebook.porte import porte
from rn623_rulebook.rules import Porte

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA = REPO_ROOT.parent / "shared" / "igr-data" / "ans_igr_v2023_snapshot_2024-06-07.csv.gz"
PUBLISHED = {"Pequeno": Porte.SMALL, "Médio": Porte.MEDIUM, "Grande": Porte.LARGE}


def test_porte_matches_every_published_row() -> None:
    """The published porte follows each row's (coverage's) beneficiary count."""
    if not DATA.exists():
        pytest.skip(f"published IGR snapshot not found at {DATA} (shared/ is not beside the repo)")
    seen: Counter[Porte] = Counter()
    mismatches = []
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            expected = PUBLISHED[row["PORTE_OPERADORA"]]
            beneficiaries = int(row["QTD_BENEFICIARIOS"])
            seen[expected] += 1
            if porte(beneficiaries) is not expected:
                mismatches.append((row["REGISTRO_ANS"], row["COMPETENCIA"], beneficiaries))
    assert not mismatches, f"{len(mismatches)} rows differ, e.g. {mismatches[:5]}"
    assert sum(seen.values()) == 127_520
    assert all(seen[size] > 0 for size in Porte)
