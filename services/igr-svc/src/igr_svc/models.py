"""Tables owned by igr-svc: counters kept as events arrive, so no query scans events."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)

# A local copy of each operator's name and segment, kept from operator.upserted.
operators = sa.Table(
    "operators",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("segment", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

# Beneficiaries per operator, coverage and month (API or the regulator's open data).
beneficiaries = sa.Table(
    "beneficiaries",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("coverage", sa.Text, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),  # first day of the month
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # api | import
    sa.Column("updated_at", TZ, nullable=False),
)

# NIP complaints per operator, coverage and month (the month of the complaint's own date,
# Brasília time); coverage "unassigned" when neither the event nor the segment says it.
complaint_counts = sa.Table(
    "complaint_counts",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("coverage", sa.Text, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("complaints", sa.BigInteger, nullable=False),
)

# The ouvidoria's indicators per operator and quarter, as named counters and sums
# (e.g. deadlines met on time, answers denied, complaints by source).
indicators = sa.Table(
    "indicators",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("quarter", sa.String(6), primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float, nullable=False),
)

# Re-analysis demands, so their answers can be counted by outcome.
reanalyses = sa.Table(
    "reanalyses",
    metadata,
    sa.Column("demand_id", sa.Uuid, primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
)

# Quarters closed for every operator: their figures are frozen in quarter_results.
closed_quarters = sa.Table(
    "closed_quarters",
    metadata,
    sa.Column("quarter", sa.String(6), primary_key=True),
    sa.Column("closed_at", TZ, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
)

# Frozen figures: revision 0 at closing, 1, 2... for complaints that arrived later.
quarter_results = sa.Table(
    "quarter_results",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("quarter", sa.String(6), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("computed_at", TZ, nullable=False),
    sa.Column("figures", JSONB, nullable=False),
    sa.Index("ix_quarter_results_quarter", "quarter", "ans_registry"),
)

# Complaints counted into a closed quarter after it closed, waiting for a revision.
late_complaints = sa.Table(
    "late_complaints",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("quarter", sa.String(6), primary_key=True),
    sa.Column("pending", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
)

# The operator's "IGR individual" per quarter and coverage, as the ANS technical sheet
# defines it (not derivable from complaint counts; supplied through the API).
individual_figures = sa.Table(
    "individual_figures",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("quarter", sa.String(6), primary_key=True),
    sa.Column("coverage", sa.Text, primary_key=True),
    sa.Column("igr_individual", sa.Numeric(12, 2), nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)
