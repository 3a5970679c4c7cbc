"""Quarantine: an MO or a reply set aside with the stage and the reason of
its failure, until an operator retries or drops it (``smscd quarantine``).

See ``_containment`` for when the daemon sets an item aside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from smscd.reset import InboundState
from smscd.store._base import StoreBase
from smscd.store._masking import mask_body
from smscd.store._receipts import settle_charge
from smscd.store._rows import of_any_carrier
from smscd.store.models import InboundRow, OutboundRow
from smscd.store.types import OutboundState, QuarantinedItem

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.store._cursor import Statements

__all__ = ["Quarantine", "quarantine_mos", "quarantine_replies"]

#: The longest reason kept (the column's size).
_REASON_LENGTH = 200

_MO = "mo"
_REPLY = "reply"


def _reason(text: str) -> str:
    return text if len(text) <= _REASON_LENGTH else text[: _REASON_LENGTH - 3] + "..."


def quarantine_mos(
    conn: Statements, ids: Sequence[int], *, stage: str, reason: str, now: datetime
) -> list[QuarantinedItem]:
    """Set these MOs aside, in the caller's transaction; returns those that
    were RECEIVED (the others are left as they are)."""
    if not ids:
        return []
    conn.execute(
        update(InboundRow)
        .where(
            InboundRow.id.in_(sorted(ids)),
            InboundRow.state == InboundState.RECEIVED.value,
        )
        .values(
            state=InboundState.QUARANTINED.value,
            quarantine_stage=stage,
            quarantine_reason=_reason(reason),
            quarantined_at=now,
            claimed_by=None,
        )
    )
    rows = conn.execute(
        _quarantined_mos().where(InboundRow.id.in_(sorted(ids)), InboundRow.quarantined_at == now)
    ).all()
    return [_item(_MO, row) for row in rows]


def quarantine_replies(
    conn: Statements, ids: Sequence[int], *, stage: str, reason: str, now: datetime
) -> list[QuarantinedItem]:
    """Set these replies aside, in the caller's transaction; returns those
    that were QUEUED (the others are left as they are)."""
    if not ids:
        return []
    conn.execute(
        update(OutboundRow)
        .where(
            OutboundRow.id.in_(sorted(ids)),
            OutboundRow.state == OutboundState.QUEUED.value,
        )
        .values(
            state=OutboundState.QUARANTINED.value,
            quarantine_stage=stage,
            quarantine_reason=_reason(reason),
            quarantined_at=now,
            lease_until=None,
            claimed_by=None,
        )
    )
    rows = conn.execute(
        _quarantined_replies().where(
            OutboundRow.id.in_(sorted(ids)), OutboundRow.quarantined_at == now
        )
    ).all()
    return [_item(_REPLY, row) for row in rows]


class Quarantine(StoreBase):
    """Setting items aside, listing them, retrying or dropping one; a part of
    ``SqlStore``."""

    def quarantine_inbound(
        self, mo_ids: Sequence[int], *, stage: str, reason: str, now: datetime
    ) -> list[QuarantinedItem]:
        """Set RECEIVED MOs aside; returns those that were RECEIVED."""
        with self._write() as conn:
            return quarantine_mos(conn, mo_ids, stage=stage, reason=reason, now=now)

    def quarantine_outbound(
        self, outbound_ids: Sequence[int], *, stage: str, reason: str, now: datetime
    ) -> list[QuarantinedItem]:
        """Set queued replies aside; returns those that were QUEUED."""
        with self._write() as conn:
            return quarantine_replies(conn, outbound_ids, stage=stage, reason=reason, now=now)

    def quarantined(self) -> list[QuarantinedItem]:
        """Every MO and reply in quarantine, oldest first."""
        with self._read() as conn:
            mos = conn.execute(_quarantined_mos().order_by(InboundRow.id)).all()
        with self._read() as conn:
            replies = conn.execute(_quarantined_replies().order_by(OutboundRow.id)).all()
        items = [_item(_MO, row) for row in mos] + [_item(_REPLY, row) for row in replies]
        return sorted(
            items, key=lambda item: (item.at is None, item.at.timestamp() if item.at else 0.0)
        )

    def retry_quarantined(self, kind: str, item_id: int, *, now: datetime) -> bool:
        """Put one item back: an MO to RECEIVED, a reply to QUEUED and due now,
        its claims and attempts counted from zero. False if it is not in
        quarantine."""
        with self._write() as conn:
            if kind == _MO:
                stmt = (
                    update(InboundRow)
                    .where(
                        InboundRow.id == item_id,
                        InboundRow.state == InboundState.QUARANTINED.value,
                    )
                    .values(state=InboundState.RECEIVED.value, claims=0, claimed_by=None)
                )
            else:
                stmt = (
                    update(OutboundRow)
                    .where(
                        OutboundRow.id == item_id,
                        OutboundRow.state == OutboundState.QUARANTINED.value,
                    )
                    .values(
                        state=OutboundState.QUEUED.value,
                        claims=0,
                        claimed_by=None,
                        attempts=0,
                        next_attempt_at=now,
                        lease_until=None,
                    )
                )
            return bool(conn.execute(stmt).rowcount)

    def drop_quarantined(self, kind: str, item_id: int, *, now: datetime) -> bool:
        """Give one item up for good: an MO becomes DROPPED (never answered), a
        reply FAILED with its body masked and an MT-mode charge voided. False if
        it is not in quarantine."""
        with self._write() as conn:
            if kind == _MO:
                stmt = (
                    update(InboundRow)
                    .where(
                        InboundRow.id == item_id,
                        InboundRow.state == InboundState.QUARANTINED.value,
                    )
                    .values(state=InboundState.DROPPED.value, decided_at=now)
                )
                return bool(conn.execute(stmt).rowcount)
            row = conn.execute(
                select(OutboundRow.id, OutboundRow.inbound_id, OutboundRow.body).where(
                    OutboundRow.id == item_id,
                    OutboundRow.state == OutboundState.QUARANTINED.value,
                )
            ).first()
            if row is None:
                return False
            conn.execute(
                update(OutboundRow)
                .where(OutboundRow.id == item_id)
                .values(
                    state=OutboundState.FAILED.value,
                    body=mask_body(row.body),
                    final_at=now,
                    claimed_by=None,
                )
            )
            settle_charge(conn, row.inbound_id, delivered=False, at=now, outbound_id=row.id)
            return True


def _quarantined_mos() -> Any:
    return select(
        InboundRow.id,
        InboundRow.carrier,
        InboundRow.source_addr.label("address"),
        InboundRow.quarantine_stage,
        InboundRow.quarantine_reason,
        InboundRow.quarantined_at,
        InboundRow.claims,
    ).where(InboundRow.state == InboundState.QUARANTINED.value)


def _quarantined_replies() -> Any:
    return select(
        OutboundRow.id,
        OutboundRow.carrier,
        OutboundRow.destination_addr.label("address"),
        OutboundRow.quarantine_stage,
        OutboundRow.quarantine_reason,
        OutboundRow.quarantined_at,
        OutboundRow.claims,
    ).where(of_any_carrier(), OutboundRow.state == OutboundState.QUARANTINED.value)


def _item(kind: str, row: Any) -> QuarantinedItem:
    return QuarantinedItem(
        kind=kind,
        id=row.id,
        carrier=row.carrier,
        address=row.address,
        stage=row.quarantine_stage or "",
        reason=row.quarantine_reason or "",
        at=row.quarantined_at,
        claims=row.claims,
    )
