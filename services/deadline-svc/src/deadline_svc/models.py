"""Tables owned by deadline-svc."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)

# A local copy of each operator's calendar data, kept from operator.upserted.
operators = sa.Table(
    "operators",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("uf", sa.String(2), nullable=False),
    sa.Column("municipality_ibge", sa.String(7), nullable=False),
    sa.Column("extra_holidays", JSONB, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

deadlines = sa.Table(
    "deadlines",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("demand_id", UUID(as_uuid=True), unique=True),
    sa.Column("access_request_id", UUID(as_uuid=True), unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("demand_type", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("started_at", TZ, nullable=False),
    sa.Column("registered_at", TZ, nullable=False),
    sa.Column("due_at", TZ, nullable=False),
    sa.Column("immediate", sa.Boolean, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("legal_basis", sa.Text, nullable=False),
    sa.Column("ruleset_id", sa.Text, nullable=False),
    # open → met | met_late | breached; a breached deadline becomes met_late when answered,
    # or met if the answer was given in time and only reached us late (see ADR 0003)
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("warned", JSONB, nullable=False, server_default="[]"),
    # the next instant the scheduler must look at this deadline; NULL once nothing is left
    sa.Column("next_check_at", TZ),
    sa.Column("breached_at", TZ),
    sa.Column("answered_at", TZ),
    sa.Column("elapsed_business_days", sa.Integer),
    sa.Column("elapsed_seconds", sa.Float),
    sa.Column("recomputed_at", TZ),
    sa.Index(
        "ix_deadlines_next_check",
        "next_check_at",
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    ),
    sa.Index("ix_deadlines_protocol", "protocol_number"),
    sa.Index("ix_deadlines_operator_status_due", "ans_registry", "status", "due_at"),
    # GET /v1/deadlines order: urgencies first, then by due instant
    sa.Index("ix_deadlines_due", sa.text("(NOT immediate)"), "due_at", "id"),
)
