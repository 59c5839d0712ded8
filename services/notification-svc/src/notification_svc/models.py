"""Tables owned by notification-svc.

A *message* (receipt, answer copy, records-ready notice) is one row of ``messages``; each
channel it is tried on is one row of ``deliveries`` (at most one per channel), whose
status history is ``delivery_events``. Contact data lives in ``protocols`` and in each
delivery's ``recipient``; both are removed when retention-svc asks for the purge.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)

# A local copy of each operator's name and time zone, kept from operator.upserted.
operators = sa.Table(
    "operators",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

# Each operator's notification profile: branding, senders, channel order, providers.
profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("ans_registry", sa.String(6), primary_key=True),
    sa.Column("profile", JSONB, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

# What a message needs to know of its protocol (personal data: purged with the protocol).
protocols = sa.Table(
    "protocols",
    metadata,
    sa.Column("protocol_number", sa.String(30), primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("opened_at", TZ, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("whatsapp", sa.Text),
    sa.Column("preferred_channels", ARRAY(sa.Text), nullable=False),
)

# Demand types, so that an answer's copy can say what was asked.
demands = sa.Table(
    "demands",
    metadata,
    sa.Column("demand_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("demand_type", sa.Text, nullable=False),
    sa.Index("ix_demands_protocol", "protocol_number"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    # the demand (or access request) the message is about; '' for a contact's receipt
    sa.Column("subject_key", sa.Text, nullable=False),
    sa.Column("demand_id", UUID(as_uuid=True)),
    sa.Column("content", JSONB, nullable=False),
    # the channels to try, in order, fixed when the message is created
    sa.Column("channels", ARRAY(sa.Text), nullable=False),
    # pending → delivered | sent (accepted, never confirmed) | failed | unreachable
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("delivered_channel", sa.Text),
    sa.Column("delivered_at", TZ),
    # W3C trace context of the event that caused the message, continued by its sends
    sa.Column("trace_headers", JSONB, nullable=False, server_default="{}"),
    sa.UniqueConstraint("protocol_number", "purpose", "subject_key", name="uq_messages_subject"),
    sa.Index("ix_messages_operator_created", "ans_registry", "created_at", "id"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column(
        "message_id",
        UUID(as_uuid=True),
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("ans_registry", sa.String(6), nullable=False),
    sa.Column("protocol_number", sa.String(30), nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("recipient", sa.Text),
    # queued → sending → sent → delivered → read; or failed; cancelled when another
    # channel delivered first
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("providers", ARRAY(sa.Text), nullable=False),
    sa.Column("provider_index", sa.Integer, nullable=False, server_default="0"),
    # the provider that accepted the message (set with provider_message_id)
    sa.Column("provider", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TZ),
    sa.Column("lease_until", TZ),
    # who holds the lease: a worker records an outcome only under its own claim
    sa.Column("lease_token", UUID(as_uuid=True)),
    sa.Column("provider_message_id", sa.Text),
    sa.Column("queued_at", TZ, nullable=False),
    sa.Column("sent_at", TZ),
    # when the channel is given up if no delivery proof arrives (NULL: never)
    sa.Column("fallback_at", TZ),
    sa.Column("delivered_at", TZ),
    sa.Column("failed_at", TZ),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("message_id", "channel", name="uq_deliveries_channel"),
    sa.Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'queued'"),
    ),
    sa.Index(
        "ix_deliveries_leased",
        "lease_until",
        postgresql_where=sa.text("status = 'sending'"),
    ),
    sa.Index(
        "ix_deliveries_fallback",
        "fallback_at",
        postgresql_where=sa.text("status = 'sent' AND fallback_at IS NOT NULL"),
    ),
    sa.Index("ix_deliveries_provider_id", "provider", "provider_message_id"),
    sa.Index("ix_deliveries_protocol", "protocol_number"),
)

# The status timeline of each delivery: every transition, with where it came from.
delivery_events = sa.Table(
    "delivery_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "delivery_id",
        UUID(as_uuid=True),
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.Column("provider", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Index("ix_delivery_events_delivery", "delivery_id", "id"),
)

# Every provider callback as received, so one that arrives before the send is recorded
# (the provider can be faster than our commit) is applied when it is.
callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("provider_message_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("at", TZ),
    sa.Column("error_code", sa.Text),
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("applied_at", TZ),
    sa.Index("ix_callbacks_provider_id", "provider", "provider_message_id"),
    sa.Index(
        "ix_callbacks_unapplied", "received_at", postgresql_where=sa.text("applied_at IS NULL")
    ),
)
