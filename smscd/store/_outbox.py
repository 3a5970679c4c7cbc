"""The outbox: a queued reply accepted by the SMSC (its body masked, its
message id's keys owned), retried, or failed for good.

A receipt that came before its reply's submit_sm_resp was recorded was stored
unmatched, with its keys (``_receipts``); the acceptance looks those up and
applies them, so the order of the two does not matter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store._masking import mask_body
from smscd.store._receipts import finish_replies, settle_charge
from smscd.store._rows import AT, of_any_carrier
from smscd.store.models import OutboundIdRow, OutboundRow, ReceiptKeyRow, ReceiptRow
from smscd.store.types import EarlyReceipt, OutboundState, ReceiptMatch, StoreError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.store._cursor import Statements

__all__ = ["Outbox"]

_FOR_ACCEPT = prepared(
    select(
        OutboundRow.id,
        OutboundRow.carrier,
        OutboundRow.state,
        OutboundRow.body,
        OutboundRow.inbound_id,
        OutboundRow.destination_addr,
    ).where(OutboundRow.id.in_(bindparam("ids", expanding=True)))
)
_ACCEPT = prepared(
    update(OutboundRow)
    .where(
        OutboundRow.id == bindparam("oid"),
        OutboundRow.state == OutboundState.QUEUED.value,
    )
    .values(
        state=OutboundState.ACCEPTED.value,
        attempts=OutboundRow.attempts + 1,
        body=bindparam("p_body"),
        smsc_message_id=bindparam("p_message_id"),
        accepted_at=bindparam("p_at", type_=AT),
        lease_until=None,
    )
)
_EARLY_RECEIPTS = prepared(
    select(
        ReceiptKeyRow.carrier,
        ReceiptKeyRow.key,
        ReceiptRow.id,
        ReceiptRow.stat,
        ReceiptRow.final,
        ReceiptRow.received_at,
    )
    .join(ReceiptRow, ReceiptRow.id == ReceiptKeyRow.receipt_id)
    .where(
        ReceiptRow.outbound_id.is_(None),
        ReceiptKeyRow.carrier.in_(bindparam("carriers", expanding=True)),
        ReceiptKeyRow.key.in_(bindparam("keys", expanding=True)),
    )
    .order_by(ReceiptRow.id)
)
_MATCH_RECEIPT = prepared(
    update(ReceiptRow).where(ReceiptRow.id == bindparam("rid")).values(outbound_id=bindparam("oid"))
)


def _own_keys(insert: Any) -> Any:
    """An accepted reply's id keys (the last reply to get a key owns it): an
    upsert, in the dialect's own form."""
    ins = insert(OutboundIdRow.__table__)
    return ins.on_conflict_do_update(
        index_elements=["carrier", "key"], set_={"outbound_id": ins.excluded.outbound_id}
    )


_OWN_KEYS_SQLITE = prepared(_own_keys(sqlite.insert))
_OWN_KEYS_PG = _own_keys(postgresql.insert)


class Outbox(StoreBase):
    """``OutboxStore``'s verdicts on replies (``claim_outbound`` is a claim:
    ``_containment``); a part of ``SqlStore``."""

    def mark_accepted(
        self, outbound_id: int, *, message_id: str, id_keys: frozenset[str], now: datetime
    ) -> None:
        self.mark_accepted_many([(outbound_id, message_id, id_keys)], now=now)

    def mark_accepted_many(
        self, accepted: Sequence[tuple[int, str, frozenset[str]]], *, now: datetime
    ) -> list[EarlyReceipt]:
        """``mark_accepted`` for several ``(outbound_id, message_id, id_keys)`` in
        ONE transaction; raises StoreError (and writes nothing) if an id is
        unknown. Returns the receipts stored before their reply's acceptance
        that it matched."""
        if not accepted:
            return []
        with self._write() as conn:
            unknown, early = self._mark_accepted(conn, accepted, now=now)
            if unknown:
                raise StoreError(f"no outbound message {unknown[0]}")
        return early

    def _mark_accepted(
        self,
        conn: Statements,
        accepted: Sequence[tuple[int, str, frozenset[str]]],
        *,
        now: datetime,
    ) -> tuple[list[int], list[EarlyReceipt]]:
        """The writes of ``mark_accepted_many``; returns the ids that have no
        reply (nothing is written for them), and the early receipts matched."""
        rows = {
            row.id: row
            for row in conn.execute(_FOR_ACCEPT, {"ids": sorted({a[0] for a in accepted})})
        }
        unknown = [outbound_id for outbound_id, _id, _keys in accepted if outbound_id not in rows]
        matched: list[EarlyReceipt] = []
        if len(unknown) < len(accepted):
            flips: dict[int, dict[str, object]] = {}
            owners: dict[tuple[str, str], int] = {}
            for outbound_id, message_id, id_keys in accepted:
                row = rows.get(outbound_id)
                if row is None:
                    continue
                if row.state == OutboundState.QUEUED.value and outbound_id not in flips:
                    flips[outbound_id] = {
                        "oid": outbound_id,
                        "p_body": mask_body(row.body),
                        "p_message_id": message_id,
                        "p_at": now,
                    }
                for key in sorted(id_keys or {message_id}):
                    owners[(row.carrier, key)] = outbound_id  # the last one wins
            if flips:
                conn.execute(_ACCEPT, list(flips.values()))
            conn.execute(
                _OWN_KEYS_PG if self._postgres else _OWN_KEYS_SQLITE,
                [
                    {"carrier": carrier, "key": key, "outbound_id": outbound_id}
                    for (carrier, key), outbound_id in owners.items()
                ],
            )
            # Receipts that came before their submit_sm_resp was recorded.
            early = conn.execute(
                _EARLY_RECEIPTS,
                {
                    "carriers": sorted({carrier for carrier, _key in owners}),
                    "keys": sorted({key for _carrier, key in owners}),
                },
            ).all()
            applied: set[int] = set()
            finals: list[tuple[int, str, datetime, int | None]] = []
            for receipt in early:
                owner = owners.get((receipt.carrier, receipt.key))
                if owner is None or receipt.id in applied:
                    continue
                applied.add(receipt.id)
                conn.execute(_MATCH_RECEIPT, {"rid": receipt.id, "oid": owner})
                reply = rows[owner]
                matched.append(
                    EarlyReceipt(
                        receipt_id=receipt.id,
                        carrier=receipt.carrier,
                        stat=receipt.stat,
                        match=ReceiptMatch(
                            outbound_id=owner,
                            mo_id=reply.inbound_id,
                            destination_addr=reply.destination_addr,
                        ),
                    )
                )
                if receipt.final:
                    finals.append((owner, receipt.stat, receipt.received_at, reply.inbound_id))
            finish_replies(conn, finals)
        return unknown, matched

    def mark_retry(
        self, outbound_id: int, *, status: int | None, next_attempt_at: datetime
    ) -> None:
        with self._write() as conn:
            conn.execute(
                update(OutboundRow)
                .where(
                    OutboundRow.id == outbound_id,
                    OutboundRow.state == OutboundState.QUEUED.value,
                )
                .values(
                    attempts=OutboundRow.attempts + 1,
                    last_status=status,
                    next_attempt_at=next_attempt_at,
                    lease_until=None,
                    claimed_by=None,
                )
            )

    def mark_failed(self, outbound_id: int, *, status: int, now: datetime) -> None:
        with self._write() as conn:
            row = conn.execute(
                select(OutboundRow.id, OutboundRow.inbound_id, OutboundRow.body).where(
                    OutboundRow.id == outbound_id,
                    OutboundRow.state == OutboundState.QUEUED.value,
                )
            ).first()
            if row is None:
                return
            conn.execute(
                update(OutboundRow)
                .where(OutboundRow.id == outbound_id)
                .values(
                    state=OutboundState.FAILED.value,
                    attempts=OutboundRow.attempts + 1,
                    last_status=status,
                    body=mask_body(row.body),
                    final_at=now,
                    lease_until=None,
                    claimed_by=None,
                )
            )
            settle_charge(conn, row.inbound_id, delivered=False, at=now, outbound_id=row.id)

    def outbox_depth(self) -> dict[str, int]:
        stmt = (
            select(OutboundRow.carrier, func.count())
            .where(of_any_carrier(), OutboundRow.state == OutboundState.QUEUED.value)
            .group_by(OutboundRow.carrier)
        )
        with self._read() as conn:
            return {carrier: int(n) for carrier, n in conn.execute(stmt)}
