"""Receipts and the charges they settle.

A receipt is matched by (carrier, key) over every canonical form of the SMSC's
message id (hex/decimal) to the reply that owns that key (``_outbox``). A
matched final receipt makes the reply DELIVERED or UNDELIVERABLE and, in MT
charging mode, the charge of its MO (or of the API MT itself) final or void,
and owes an API client its callback; an unmatched one is stored with its keys
for the acceptance that comes after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update

from smscd.reset import ChargingMode
from smscd.store._api_callbacks import owe_callbacks
from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store._rows import AT
from smscd.store.models import ChargeRow, OutboundIdRow, OutboundRow, ReceiptKeyRow, ReceiptRow
from smscd.store.types import OutboundState, ReceiptMatch

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.store._cursor import Statements
    from smscd.store.types import NewReceipt

__all__ = ["Receipts", "finish_replies", "settle_charge"]

_OWNERS_OF_KEYS = prepared(
    select(
        OutboundIdRow.carrier,
        OutboundIdRow.key,
        OutboundIdRow.outbound_id,
        OutboundRow.inbound_id,
        OutboundRow.destination_addr,
    )
    .join(OutboundRow, OutboundRow.id == OutboundIdRow.outbound_id)
    .where(
        OutboundIdRow.carrier.in_(bindparam("carriers", expanding=True)),
        OutboundIdRow.key.in_(bindparam("keys", expanding=True)),
    )
)
_INSERT_RECEIPT = prepared(insert(ReceiptRow))
_INSERT_RECEIPT_KEY = prepared(insert(ReceiptKeyRow))
_SETTLE_CHARGE = prepared(
    update(ChargeRow)
    .where(
        ChargeRow.inbound_id == bindparam("iid"),
        ChargeRow.mode == ChargingMode.MT.value,
        ChargeRow.state == "pending",
    )
    .values(state=bindparam("p_state"), finalized_at=bindparam("p_at", type_=AT))
)
# A final receipt of an ACCEPTED reply, and the MT charge of the MO behind it
# (``finish_replies``; ``_SETTLE_CHARGE`` is the form by MO, for a reply the
# SMSC rejected or an operator dropped). The charge statement needs no "the
# reply was ACCEPTED" condition: a reply that has id keys (and so can match a
# receipt) was ACCEPTED, and one that is no longer ACCEPTED has a charge that
# is no longer pending.
_FINISH_ACCEPTED = prepared(
    update(OutboundRow)
    .where(
        OutboundRow.id == bindparam("oid"),
        OutboundRow.state == OutboundState.ACCEPTED.value,
    )
    .values(state=bindparam("p_state"), final_at=bindparam("p_at", type_=AT))
)
_SETTLE_CHARGE_OF_REPLY = prepared(
    update(ChargeRow)
    .where(
        ChargeRow.inbound_id
        == select(OutboundRow.inbound_id)
        .where(OutboundRow.id == bindparam("oid"))
        .scalar_subquery(),
        ChargeRow.mode == ChargingMode.MT.value,
        ChargeRow.state == "pending",
    )
    .values(state=bindparam("p_charge"), finalized_at=bindparam("p_at", type_=AT))
)


# The same for an API client's MT, whose charge hangs on the message itself.
_SETTLE_CHARGE_OF_MT = prepared(
    update(ChargeRow)
    .where(
        ChargeRow.outbound_id == bindparam("oid"),
        ChargeRow.mode == ChargingMode.MT.value,
        ChargeRow.state == "pending",
    )
    .values(state=bindparam("p_charge"), finalized_at=bindparam("p_at", type_=AT))
)


def finish_replies(
    conn: Statements, finals: Sequence[tuple[int, str, datetime, int | None]]
) -> None:
    """Final receipts ``(outbound id, stat, received at, its MO's id)`` of
    ACCEPTED replies, in order (a reply's first final receipt wins): the reply
    DELIVERED or UNDELIVERABLE, its MT charge final or void (the MO's, or for
    an API client's MT, with no MO, its own, and the client's callback owed)."""
    if not finals:
        return
    delivered = [(m, stat.upper() == "DELIVRD", at) for m, stat, at, _mo in finals]
    conn.execute(
        _FINISH_ACCEPTED,
        [
            {
                "oid": m,
                "p_state": (OutboundState.DELIVERED if ok else OutboundState.UNDELIVERABLE).value,
                "p_at": at,
            }
            for m, ok, at in delivered
        ],
    )
    replies: list[dict[str, object]] = []
    api_mts: list[dict[str, object]] = []
    api_ids: list[int] = []
    for (m, ok, at), (*_, mo) in zip(delivered, finals, strict=True):
        settled: dict[str, object] = {"oid": m, "p_charge": "final" if ok else "void", "p_at": at}
        if mo is not None:
            replies.append(settled)
        else:
            api_mts.append(settled)
            api_ids.append(m)
    if replies:
        conn.execute(_SETTLE_CHARGE_OF_REPLY, replies)
    if api_mts:
        conn.execute(_SETTLE_CHARGE_OF_MT, api_mts)
        owe_callbacks(conn, api_ids, at=finals[-1][2])


def settle_charge(
    conn: Statements,
    inbound_id: int | None,
    *,
    delivered: bool,
    at: datetime,
    outbound_id: int | None = None,
) -> None:
    """MT mode: the charge becomes final on delivery, void on a final failure;
    the charge of the MO ``inbound_id``, or for an API MT (no MO) the one of
    the message ``outbound_id``. A failure also owes the API client its
    callback."""
    state = "final" if delivered else "void"
    if inbound_id is not None:
        conn.execute(_SETTLE_CHARGE, {"iid": inbound_id, "p_state": state, "p_at": at})
    elif outbound_id is not None:
        conn.execute(_SETTLE_CHARGE_OF_MT, {"oid": outbound_id, "p_charge": state, "p_at": at})
        owe_callbacks(conn, [outbound_id], at=at)


class Receipts(StoreBase):
    """``record_receipt(s)`` of ``OutboxStore``; a part of ``SqlStore``."""

    def record_receipt(self, receipt: NewReceipt) -> int | None:
        (matched,) = self.record_receipts([receipt])
        return matched

    def record_receipts(self, receipts: Sequence[NewReceipt]) -> list[int | None]:
        """``record_receipt`` for several receipts in ONE transaction, in order;
        returns the matched outbound id of each (None: kept for mark_accepted)."""
        if not receipts:
            return []
        with self._write() as conn:
            matches = self._record_receipts(conn, receipts)
        return [m.outbound_id if m is not None else None for m in matches]

    def _record_receipts(
        self, conn: Statements, receipts: Sequence[NewReceipt]
    ) -> list[ReceiptMatch | None]:
        if not receipts:
            return []
        keys = [sorted(r.id_keys or {r.message_id}) for r in receipts]
        owners: dict[tuple[str, str], int] = {}
        replies: dict[int, ReceiptMatch] = {}
        for row in conn.execute(
            _OWNERS_OF_KEYS,
            {
                "carriers": sorted({r.carrier for r in receipts}),
                "keys": sorted({k for ks in keys for k in ks}),
            },
        ):
            owners[(row.carrier, row.key)] = row.outbound_id
            replies[row.outbound_id] = ReceiptMatch(
                outbound_id=row.outbound_id,
                mo_id=row.inbound_id,
                destination_addr=row.destination_addr,
            )
        matched: list[int | None] = [
            max(
                (owners[(r.carrier, k)] for k in ks if (r.carrier, k) in owners),
                default=None,
            )
            for r, ks in zip(receipts, keys, strict=True)
        ]
        receipt_ids = self._insert_numbered(
            conn,
            _INSERT_RECEIPT,
            [
                {
                    "carrier": r.carrier,
                    "message_id": r.message_id,
                    "stat": r.stat,
                    "err": r.err,
                    "final": r.final,
                    "received_at": r.received_at,
                    "outbound_id": m,
                }
                for r, m in zip(receipts, matched, strict=True)
            ],
        )
        unmatched_keys = [
            {"receipt_id": receipt_id, "key": k, "carrier": r.carrier}
            for r, ks, m, receipt_id in zip(receipts, keys, matched, receipt_ids, strict=True)
            if m is None
            for k in ks
        ]
        if unmatched_keys:
            conn.execute(_INSERT_RECEIPT_KEY, unmatched_keys)
        finish_replies(
            conn,
            [
                (m, r.stat, r.received_at, replies[m].mo_id)
                for r, m in zip(receipts, matched, strict=True)
                if m is not None and r.final
            ],
        )
        return [replies[m] if m is not None else None for m in matched]
