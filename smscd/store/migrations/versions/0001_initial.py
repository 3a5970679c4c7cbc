"""Initial schema: accounts, inbound/outbound messages, message ids, receipts, charges.

Revision ID: 0001
Revises:
Create Date: 2024-11-21
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

from smscd.store.models import UtcDateTime

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("bhxh_code", sa.String(10), nullable=False),
        sa.Column("phone", sa.String(15), nullable=False),
        sa.Column("e_transaction", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("must_change", sa.Boolean(), nullable=False),
        sa.Column("password_changed_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bhxh_code", name="pk_accounts"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("source_addr", sa.String(21), nullable=False),
        sa.Column("source_addr_ton", sa.Integer(), nullable=False),
        sa.Column("source_addr_npi", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(21), nullable=False),
        sa.Column("destination_addr", sa.String(21), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("bhxh_code", sa.String(10), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('received', 'decided', 'duplicate')", name="ck_inbound_messages_state"
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN "
            "('reset_ok', 'mismatch', 'invalid_code', 'bad_syntax', 'rate_limited')",
            name="ck_inbound_messages_outcome",
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of"],
            ["inbound_messages.id"],
            name="fk_inbound_messages_duplicate_of_inbound_messages",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
    )
    op.create_index("ix_inbound_messages_state_id", "inbound_messages", ["state", "id"])
    op.create_index(
        "ix_inbound_messages_carrier_msisdn_received_at",
        "inbound_messages",
        ["carrier", "msisdn", "received_at"],
    )
    op.create_index(
        "ix_inbound_messages_msisdn_outcome_decided_at",
        "inbound_messages",
        ["msisdn", "outcome", "decided_at"],
    )
    op.create_index(
        "ix_inbound_messages_bhxh_code_outcome_decided_at",
        "inbound_messages",
        ["bhxh_code", "outcome", "decided_at"],
    )
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("destination_addr", sa.String(21), nullable=False),
        sa.Column("dest_addr_ton", sa.Integer(), nullable=False),
        sa.Column("dest_addr_npi", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("smsc_message_id", sa.String(80), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("accepted_at", UtcDateTime(), nullable=True),
        sa.Column("final_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'accepted', 'delivered', 'undeliverable', 'failed')",
            name="ck_outbound_messages_state",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name="fk_outbound_messages_inbound_id_inbound_messages",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
        sa.UniqueConstraint("inbound_id", name="uq_outbound_messages_inbound_id"),
    )
    op.create_index(
        "ix_outbound_messages_carrier_state_next_attempt_at",
        "outbound_messages",
        ["carrier", "state", "next_attempt_at"],
    )
    op.create_index("ix_outbound_messages_created_at", "outbound_messages", ["created_at"])

    op.create_table(
        "outbound_message_ids",
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("outbound_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name="fk_outbound_message_ids_outbound_id_outbound_messages",
        ),
        sa.PrimaryKeyConstraint("carrier", "key", name="pk_outbound_message_ids"),
    )
    op.create_index("ix_outbound_message_ids_outbound_id", "outbound_message_ids", ["outbound_id"])

    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(80), nullable=False),
        sa.Column("stat", sa.String(16), nullable=False),
        sa.Column("err", sa.String(16), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("outbound_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name="fk_receipts_outbound_id_outbound_messages",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
    )
    op.create_index("ix_receipts_received_at", "receipts", ["received_at"])
    op.create_index("ix_receipts_outbound_id", "receipts", ["outbound_id"])

    op.create_table(
        "receipt_id_keys",
        sa.Column("receipt_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["receipts.id"],
            name="fk_receipt_id_keys_receipt_id_receipts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("receipt_id", "key", name="pk_receipt_id_keys"),
    )
    op.create_index("ix_receipt_id_keys_carrier_key", "receipt_id_keys", ["carrier", "key"])

    op.create_table(
        "charges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("amount_vnd", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(4), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finalized_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("mode IN ('mo', 'mt')", name="ck_charges_mode"),
        sa.CheckConstraint("state IN ('final', 'pending', 'void')", name="ck_charges_state"),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name="fk_charges_inbound_id_inbound_messages",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_charges"),
        sa.UniqueConstraint("inbound_id", name="uq_charges_inbound_id"),
    )


def downgrade() -> None:
    op.drop_table("charges")
    op.drop_table("receipt_id_keys")
    op.drop_table("receipts")
    op.drop_table("outbound_message_ids")
    op.drop_table("outbound_messages")
    op.drop_table("inbound_messages")
    op.drop_table("accounts")
