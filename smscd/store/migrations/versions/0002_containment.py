"""Containment: quarantined and dropped MOs, expired and quarantined replies,
and who holds an item in progress (claims).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

from smscd.store.models import UtcDateTime

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INBOUND_STATES_OLD = "state IN ('received', 'decided', 'duplicate')"
_INBOUND_STATES = "state IN ('received', 'decided', 'duplicate', 'quarantined', 'dropped')"
_OUTBOUND_STATES_OLD = "state IN ('queued', 'accepted', 'delivered', 'undeliverable', 'failed')"
_OUTBOUND_STATES = (
    "state IN ('queued', 'accepted', 'delivered', 'undeliverable', 'failed', "
    "'expired', 'quarantined')"
)


def _containment_columns(*, claimed_at: bool) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [sa.Column("claimed_by", sa.String(32), nullable=True)]
    if claimed_at:
        columns.append(sa.Column("claimed_at", UtcDateTime(), nullable=True))
    columns += [
        sa.Column("claims", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quarantine_stage", sa.String(16), nullable=True),
        sa.Column("quarantine_reason", sa.String(200), nullable=True),
        sa.Column("quarantined_at", UtcDateTime(), nullable=True),
    ]
    return columns


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        for column in _containment_columns(claimed_at=True):
            batch.add_column(column)
        batch.drop_constraint("ck_inbound_messages_state", type_="check")
        batch.create_check_constraint(op.f("ck_inbound_messages_state"), _INBOUND_STATES)
    with op.batch_alter_table("outbound_messages") as batch:
        for column in _containment_columns(claimed_at=False):
            batch.add_column(column)
        batch.drop_constraint("ck_outbound_messages_state", type_="check")
        batch.create_check_constraint(op.f("ck_outbound_messages_state"), _OUTBOUND_STATES)


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_constraint("ck_outbound_messages_state", type_="check")
        batch.create_check_constraint(op.f("ck_outbound_messages_state"), _OUTBOUND_STATES_OLD)
        for column in _containment_columns(claimed_at=False):
            batch.drop_column(column.name)
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_constraint("ck_inbound_messages_state", type_="check")
        batch.create_check_constraint(op.f("ck_inbound_messages_state"), _INBOUND_STATES_OLD)
        for column in _containment_columns(claimed_at=True):
            batch.drop_column(column.name)
