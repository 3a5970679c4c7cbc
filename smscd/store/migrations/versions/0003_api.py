"""The HTTP API: clients, their MTs (no MO behind them), their charges and
callbacks, and the channel of every request.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

On SQLite, ``batch_alter_table`` copies ``inbound_messages``,
``outbound_messages`` and ``charges`` into new tables (a column's nullability
or a foreign key cannot be altered in place); ``smscd.store.migrate.upgrade``
runs it with foreign keys off and checks them all before the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

from smscd.store.models import UtcDateTime

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(21), nullable=True),
        sa.Column("sender_ton", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sender_npi", sa.Integer(), server_default="0", nullable=False),
        sa.Column("price_vnd", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rate_per_s", sa.Float(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_clients"),
        sa.UniqueConstraint("name", name="uq_api_clients_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_clients_token_hash"),
    )
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("channel", sa.String(16), server_default="sms", nullable=False))
        batch.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_inbound_messages_client_id_api_clients", "api_clients", ["client_id"], ["id"]
        )
    with op.batch_alter_table("outbound_messages") as batch:
        batch.alter_column("inbound_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("client_ref", sa.String(64), nullable=True))
        batch.add_column(sa.Column("source_addr", sa.String(21), nullable=True))
        batch.add_column(sa.Column("source_addr_ton", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("source_addr_npi", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_outbound_messages_client_id_api_clients", "api_clients", ["client_id"], ["id"]
        )
        batch.create_check_constraint(
            "ck_outbound_messages_origin", "inbound_id IS NOT NULL OR client_id IS NOT NULL"
        )
        batch.create_index(
            "ix_outbound_messages_client_id_client_ref", ["client_id", "client_ref"], unique=True
        )
    with op.batch_alter_table("charges") as batch:
        batch.alter_column("inbound_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("outbound_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(32), server_default="sms", nullable=False))
        batch.create_foreign_key(
            "fk_charges_outbound_id_outbound_messages", "outbound_messages", ["outbound_id"], ["id"]
        )
        batch.create_unique_constraint("uq_charges_outbound_id", ["outbound_id"])
        batch.create_check_constraint(
            "ck_charges_origin", "inbound_id IS NOT NULL OR outbound_id IS NOT NULL"
        )
    op.create_table(
        "api_callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("outbound_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("done_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name="fk_api_callbacks_outbound_id_outbound_messages",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name="fk_api_callbacks_client_id_api_clients"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_callbacks"),
        sa.UniqueConstraint("outbound_id", name="uq_api_callbacks_outbound_id"),
    )
    op.create_index(
        "ix_api_callbacks_done_at_next_attempt_at", "api_callbacks", ["done_at", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_api_callbacks_done_at_next_attempt_at", table_name="api_callbacks")
    op.drop_table("api_callbacks")
    with op.batch_alter_table("charges") as batch:
        batch.drop_constraint("ck_charges_origin", type_="check")
        batch.drop_constraint("uq_charges_outbound_id", type_="unique")
        batch.drop_constraint("fk_charges_outbound_id_outbound_messages", type_="foreignkey")
        batch.drop_column("channel")
        batch.drop_column("outbound_id")
        batch.alter_column("inbound_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_index("ix_outbound_messages_client_id_client_ref")
        batch.drop_constraint("ck_outbound_messages_origin", type_="check")
        batch.drop_constraint("fk_outbound_messages_client_id_api_clients", type_="foreignkey")
        for name in (
            "source_addr_npi",
            "source_addr_ton",
            "source_addr",
            "client_ref",
            "client_id",
        ):
            batch.drop_column(name)
        batch.alter_column("inbound_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_constraint("fk_inbound_messages_client_id_api_clients", type_="foreignkey")
        batch.drop_column("client_id")
        batch.drop_column("channel")
    op.drop_table("api_clients")
