"""Tables owned by retention-svc."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)

# What retention-svc knows of each protocol: the facts that start retention periods.
# The beneficiary is kept only as a keyed hash (HMAC), enough to find their protocols.
protocols = sa.Table(
    "protocols",
    metadata,
    sa.Column("protocol_number", sa.String(30), primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("beneficiary_key", sa.String(64)),
    sa.Column("contact_at", TZ, nullable=False),
    sa.Column("complaint_at", TZ),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Index("ix_protocols_beneficiary", "ans_registry", "beneficiary_key"),
)

# One row per demand: a protocol is resolved once every demand has its answer.
demands = sa.Table(
    "demands",
    metadata,
    sa.Column("demand_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("answered_at", TZ),
    sa.Index("ix_demands_protocol", "protocol_number"),
)

# One row per (protocol, record class): retained → purge_requested → disposed.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("protocol_number", sa.String(30), primary_key=True),
    sa.Column("record_class", sa.Text, primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("retain_until", TZ),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("purge_request_id", UUID(as_uuid=True)),
    sa.Column("updated_at", TZ, nullable=False),
    # the purge runner's queue: only records still retained whose end is known
    sa.Index(
        "ix_schedules_due",
        "retain_until",
        postgresql_where=sa.text("status = 'retained' AND retain_until IS NOT NULL"),
    ),
    sa.Index("ix_schedules_operator_due", "ans_registry", "retain_until"),
)

purge_requests = sa.Table(
    "purge_requests",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("record_classes", ARRAY(sa.Text), nullable=False),
    sa.Column("owners", ARRAY(sa.Text), nullable=False),
    sa.Column("requested_at", TZ, nullable=False),
    sa.Column("disposed_at", TZ),
    # new facts put every entry back under retention before any owner confirmed
    sa.Column("cancelled_at", TZ),
    sa.Index("ix_purge_requests_protocol", "protocol_number"),
    sa.Index(
        "ix_purge_requests_pending",
        "ans_registry",
        "requested_at",
        postgresql_where=sa.text("disposed_at IS NULL"),
    ),
)

purge_confirmations = sa.Table(
    "purge_confirmations",
    metadata,
    sa.Column("purge_request_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("record_classes", ARRAY(sa.Text), nullable=False),
    sa.Column("purged_at", TZ, nullable=False),
    sa.Column("anonymized", sa.Boolean, nullable=False),
    sa.Column("received_at", TZ, nullable=False),
)

# Disposal certificates: one chain per operator, each linked to the previous by its hash.
certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("purge_request_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("record_classes", ARRAY(sa.Text), nullable=False),
    sa.Column("confirmations", JSONB, nullable=False),
    sa.Column("requested_at", TZ, nullable=False),
    sa.Column("disposed_at", TZ, nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("ans_registry", "sequence", name="uq_certificates_chain"),
    sa.Index("ix_certificates_protocol", "protocol_number"),
)

# The head of each operator's chain, locked to append the next certificate.
chain_heads = sa.Table(
    "chain_heads",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),  # protocol | beneficiary | operator
    sa.Column("protocol_number", sa.String(30)),
    sa.Column("beneficiary_key", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("placed_by", sa.Text, nullable=False),
    sa.Column("placed_at", TZ, nullable=False),
    sa.Column("released_by", sa.Text),
    sa.Column("released_at", TZ),
    sa.Column("release_reason", sa.Text),
    sa.Index(
        "ix_legal_holds_active",
        "ans_registry",
        postgresql_where=sa.text("released_at IS NULL"),
    ),
)

# Every change to a hold, append-only.
hold_audit = sa.Table(
    "hold_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("hold_id", UUID(as_uuid=True), nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # placed | released
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_hold_audit_hold", "hold_id", "id"),
)

access_requests = sa.Table(
    "access_requests",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),  # beneficiary | protocol
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("requested_at", TZ, nullable=False),
    sa.Column("due_at", TZ, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("legal_basis", sa.Text, nullable=False),
    sa.Column("ruleset_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # open | fulfilled | rejected
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TZ),
    sa.Column("last_error", sa.Text),
    sa.Column("fulfilled_at", TZ),
    sa.Column("bundle", JSONB),
    # the bundle is removed when a protocol it holds is disposed of (no copy outlives)
    sa.Column("bundle_removed_at", TZ),
    sa.Index(
        "ix_access_requests_next_attempt",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'open'"),
    ),
    sa.Index("ix_access_requests_operator", "ans_registry", "requested_at"),
)
