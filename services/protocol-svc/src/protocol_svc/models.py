"""Tables owned by protocol-svc."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

TZ = sa.DateTime(timezone=True)

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("segment", sa.Text, nullable=False),
    sa.Column("modality", sa.Text, nullable=False),
    sa.Column("beneficiaries", sa.Integer, nullable=False),
    sa.Column("uf", sa.String(2), nullable=False),
    sa.Column("municipality_ibge", sa.String(7), nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("protocol_layout", sa.Text, nullable=False),
    sa.Column("extra_holidays", JSONB, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

protocol_sequences = sa.Table(
    "protocol_sequences",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)

protocols = sa.Table(
    "protocols",
    metadata,
    sa.Column("number", sa.String(30), primary_key=True),
    sa.Column(
        "ans_registry", sa.String(6), sa.ForeignKey("operators.ans_registry"), nullable=False
    ),
    sa.Column("layout_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("opened_at", TZ, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("contact_id", sa.Text),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("request_fingerprint", sa.String(64)),
    sa.Column("beneficiary", JSONB, nullable=False),
    sa.Column("beneficiary_cpf", sa.String(11)),
    sa.Column("anonymized_at", TZ),
    sa.UniqueConstraint("ans_registry", "idempotency_key", name="uq_protocols_idempotency_key"),
    sa.UniqueConstraint("ans_registry", "contact_id", name="uq_protocols_contact_id"),
    sa.Index("ix_protocols_operator_opened", "ans_registry", "opened_at"),
    sa.Index("ix_protocols_operator_cpf", "ans_registry", "beneficiary_cpf"),
)

demands = sa.Table(
    "demands",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), sa.ForeignKey("protocols.number"), nullable=False),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("demand_type", sa.Text, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("requested_at", TZ, nullable=False),
    sa.Column("registered_at", TZ, nullable=False),
    sa.Column("due_at", TZ, nullable=False),
    sa.Column("immediate", sa.Boolean, nullable=False),
    sa.Column("deadline_rule_id", sa.Text, nullable=False),
    sa.Column("deadline_legal_basis", sa.Text, nullable=False),
    sa.Column("deadline_unit", sa.Text, nullable=False),
    sa.Column("deadline_amount", sa.Integer, nullable=False),
    sa.Column("ruleset_id", sa.Text, nullable=False),
    sa.Column("reanalysis_of", UUID(as_uuid=True), sa.ForeignKey("demands.id")),
    # insertion order: records made in the same instant keep the order they were made in
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Index("ix_demands_protocol", "protocol_number"),
)

status_history = sa.Table(
    "protocol_status_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("protocol_number", sa.String(30), sa.ForeignKey("protocols.number"), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.Index("ix_status_history_protocol", "protocol_number", "id"),
)

answers = sa.Table(
    "answers",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("demand_id", UUID(as_uuid=True), sa.ForeignKey("demands.id"), nullable=False),
    sa.Column("protocol_number", sa.String(30), sa.ForeignKey("protocols.number"), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("legal_basis", sa.Text),
    sa.Column("answered_at", TZ, nullable=False),
    sa.Column("answered_by", sa.Text),
    sa.UniqueConstraint("demand_id", name="uq_answers_demand"),
)

interactions = sa.Table(
    "interactions",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), sa.ForeignKey("protocols.number"), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("author", sa.Text),
    sa.Column("content", sa.Text),
    sa.Column("recording_uri", sa.Text),
    sa.Column("duration_seconds", sa.Integer),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Index("ix_interactions_protocol", "protocol_number", "occurred_at"),
)

complaints = sa.Table(
    "complaints",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), sa.ForeignKey("protocols.number"), nullable=False),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("classification", sa.Text),
    sa.Column("external_reference", sa.Text),
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("registered_at", TZ, nullable=False),
    sa.Column("demand_id", UUID(as_uuid=True), sa.ForeignKey("demands.id")),
    sa.Column("coverage", sa.Text),
    sa.Index("ix_complaints_protocol", "protocol_number"),
)

record_purges = sa.Table(
    "record_purges",
    metadata,
    sa.Column("purge_request_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("record_classes", JSONB, nullable=False),
    sa.Column("anonymized", sa.Boolean, nullable=False),
    sa.Column("purged_at", TZ, nullable=False),
    sa.Index("ix_record_purges_protocol", "protocol_number"),
)
