"""Reading the regulator's open IGR data (semicolon-separated, UTF-8, decimal comma).

Columns: REGISTRO_ANS; RAZAO_SOCIAL; COBERTURA; IGR; QTD_RECLAMACOES; QTD_BENEFICIARIOS;
PORTE_OPERADORA; COMPETENCIA (YYYYMM); COMPETENCIA_BENEFICIARIO (the month the
beneficiary count is from); DT_ATUALIZACAO. One row per operator, coverage and month.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

COVERAGE_NAMES = {
    "assistência médica": "medical",
    "assistencia medica": "medical",
    "médico-hospitalar": "medical",
    "exclusivamente odontológica": "dental",
    "exclusivamente odontologica": "dental",
    "odontológico": "dental",
    "odontologico": "dental",
}
REQUIRED = ("REGISTRO_ANS", "COBERTURA", "QTD_BENEFICIARIOS", "COMPETENCIA_BENEFICIARIO")


class OpenDataError(ValueError):
    """A line of the file cannot be read; ``line`` and ``column`` say where."""

    def __init__(self, line: int, column: str, message: str) -> None:
        super().__init__(f"line {line}, {column}: {message}")
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class OpenDataRow:
    """One published row: an operator's coverage in a month."""

    ans_registry: str
    name: str
    coverage: str
    month: date | None
    complaints: int | None
    beneficiaries: int
    beneficiaries_month: date
    igr: Decimal | None


def _month(text: str) -> date:
    text = text.strip()
    if len(text) != 6 or not text.isdigit() or not 1 <= int(text[4:]) <= 12:
        raise ValueError("must be a month as YYYYMM")
    return date(int(text[:4]), int(text[4:]), 1)


def _count(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def read_open_data(lines: Iterable[str]) -> Iterator[OpenDataRow]:
    """The rows of an open-data file; OpenDataError names the first bad line and column."""
    reader = csv.DictReader(lines, delimiter=";")
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        raise OpenDataError(1, missing[0], "column missing from the header")
    for line, row in enumerate(reader, start=2):
        column = "REGISTRO_ANS"
        try:
            ans = row["REGISTRO_ANS"].strip()
            if len(ans) != 6 or not ans.isdigit():
                raise ValueError("must be 6 digits")
            column = "COBERTURA"
            coverage = COVERAGE_NAMES.get(row["COBERTURA"].strip().lower())
            if coverage is None:
                raise ValueError("must be Assistência médica or Exclusivamente odontológica")
            column = "QTD_BENEFICIARIOS"
            beneficiaries = _count(row["QTD_BENEFICIARIOS"])
            column = "COMPETENCIA_BENEFICIARIO"
            beneficiaries_month = _month(row["COMPETENCIA_BENEFICIARIO"])
            column = "COMPETENCIA"
            month = _month(row["COMPETENCIA"]) if row.get("COMPETENCIA") else None
            column = "QTD_RECLAMACOES"
            complaints = _count(row["QTD_RECLAMACOES"]) if row.get("QTD_RECLAMACOES") else None
            column = "IGR"
            igr = Decimal(row["IGR"].strip().replace(",", ".")) if row.get("IGR") else None
        except (ValueError, ArithmeticError, AttributeError) as exc:
            raise OpenDataError(line, column, str(exc) or "unreadable") from None
        yield OpenDataRow(
            ans_registry=ans,
            name=(row.get("RAZAO_SOCIAL") or "").strip() or ans,
            coverage=coverage,
            month=month,
            complaints=complaints,
            beneficiaries=beneficiaries,
            beneficiaries_month=beneficiaries_month,
            igr=igr,
        )


def segment_of(coverages: set[str]) -> str:
    """The segment an operator's published coverages imply."""
    return "both" if len(coverages) > 1 else next(iter(coverages))
