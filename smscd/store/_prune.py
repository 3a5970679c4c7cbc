"""Prune: old message history deleted (``smscd db prune``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from sqlalchemy import delete, select

from smscd.reset import InboundState
from smscd.store._base import StoreBase
from smscd.store.models import (
    ApiCallbackRow,
    ChargeRow,
    InboundRow,
    OutboundIdRow,
    OutboundRow,
    ReceiptKeyRow,
    ReceiptRow,
)
from smscd.store.types import OutboundState

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Select

    from smscd.store._cursor import Statements

__all__ = ["PRUNE_BATCH", "Prune", "PruneCounts"]

#: Prune works through this many MOs per transaction.
PRUNE_BATCH = 5000


@attrs.frozen(kw_only=True)
class PruneCounts:
    inbound: int
    outbound: int
    receipts: int
    charges: int


class Prune(StoreBase):
    """``prune``; a part of ``SqlStore``."""

    def prune(self, before: datetime) -> PruneCounts:
        """Delete MOs (decided or duplicate) received before ``before``, with
        their reply, its ids and receipts, and their charge, plus unmatched
        receipts older than ``before``. An MO whose reply is still queued or
        whose charge is still pending stays. Accounts are never touched.
        Works in batches of ``PRUNE_BATCH`` MOs, one transaction each. The
        HTTP API's MTs (no MO behind them) created before ``before`` go the
        same way, with their charge and callback, unless still queued (or in
        quarantine) or charged pending."""
        totals = dict.fromkeys(("inbound", "outbound", "receipts", "charges"), 0)
        has_queued = (
            select(OutboundRow.id)
            .where(
                OutboundRow.inbound_id == InboundRow.id,
                OutboundRow.state == OutboundState.QUEUED.value,
            )
            .exists()
        )
        has_pending = (
            select(ChargeRow.id)
            .where(ChargeRow.inbound_id == InboundRow.id, ChargeRow.state == "pending")
            .exists()
        )
        prunable = (
            select(InboundRow.id)
            .where(
                InboundRow.received_at < before,
                InboundRow.state.in_([InboundState.DECIDED.value, InboundState.DUPLICATE.value]),
                ~has_queued,
                ~has_pending,
            )
            .order_by(InboundRow.id)
            .limit(PRUNE_BATCH)
        )
        while True:
            with self._write() as conn:
                ids = list(conn.execute(prunable).scalars())
                if not ids:
                    break
                out_ids = select(OutboundRow.id).where(OutboundRow.inbound_id.in_(ids))
                _delete_replies(conn, out_ids, totals)
                totals["charges"] += conn.execute(
                    delete(ChargeRow).where(ChargeRow.inbound_id.in_(ids))
                ).rowcount
                totals["inbound"] += conn.execute(
                    delete(InboundRow).where(InboundRow.id.in_(ids))
                ).rowcount
        self._prune_api_messages(before, totals)
        with self._write() as conn:
            stale = select(ReceiptRow.id).where(
                ReceiptRow.outbound_id.is_(None), ReceiptRow.received_at < before
            )
            conn.execute(delete(ReceiptKeyRow).where(ReceiptKeyRow.receipt_id.in_(stale)))
            totals["receipts"] += conn.execute(
                delete(ReceiptRow).where(
                    ReceiptRow.outbound_id.is_(None), ReceiptRow.received_at < before
                )
            ).rowcount
        return PruneCounts(**totals)

    def _prune_api_messages(self, before: datetime, totals: dict[str, int]) -> None:
        has_pending = (
            select(ChargeRow.id)
            .where(ChargeRow.outbound_id == OutboundRow.id, ChargeRow.state == "pending")
            .exists()
        )
        prunable = (
            select(OutboundRow.id)
            .where(
                OutboundRow.inbound_id.is_(None),
                OutboundRow.created_at < before,
                OutboundRow.state.not_in(
                    [OutboundState.QUEUED.value, OutboundState.QUARANTINED.value]
                ),
                ~has_pending,
            )
            .order_by(OutboundRow.id)
            .limit(PRUNE_BATCH)
        )
        while True:
            with self._write() as conn:
                ids = list(conn.execute(prunable).scalars())
                if not ids:
                    return
                totals["charges"] += conn.execute(
                    delete(ChargeRow).where(ChargeRow.outbound_id.in_(ids))
                ).rowcount
                _delete_replies(conn, ids, totals)


def _delete_replies(
    conn: Statements, out_ids: Select[int] | list[int], totals: dict[str, int]
) -> None:
    """Delete the outbound rows ``out_ids`` with their receipts, message ids and
    callbacks (their charges are the caller's: by MO or by MT)."""
    receipt_ids = select(ReceiptRow.id).where(ReceiptRow.outbound_id.in_(out_ids))
    conn.execute(delete(ReceiptKeyRow).where(ReceiptKeyRow.receipt_id.in_(receipt_ids)))
    totals["receipts"] += conn.execute(
        delete(ReceiptRow).where(ReceiptRow.outbound_id.in_(out_ids))
    ).rowcount
    conn.execute(delete(OutboundIdRow).where(OutboundIdRow.outbound_id.in_(out_ids)))
    conn.execute(delete(ApiCallbackRow).where(ApiCallbackRow.outbound_id.in_(out_ids)))
    totals["outbound"] += conn.execute(
        delete(OutboundRow).where(OutboundRow.id.in_(out_ids))
    ).rowcount
