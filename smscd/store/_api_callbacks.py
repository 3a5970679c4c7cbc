"""Callbacks owed to API clients: a final state of an API message, to be
POSTed to its client's ``callback_url``.

``owe_callbacks`` runs inside the transaction that makes messages final
(receipts, rejections, expiry, a dropped quarantine): for each API message of
a client with a callback URL that is now in a final state it inserts one
``api_callbacks`` row, due at once. The UNIQUE ``outbound_id`` keeps it to one
per message, whatever replays. The daemon's callback sender reads the due rows
(``due_api_callbacks``), posts them and records the outcome
(``api_callback_done``, ``api_callback_retry``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from sqlalchemy import and_, bindparam, exists, insert, literal, select, update

from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store._rows import AT
from smscd.store.models import ApiCallbackRow, ApiClientRow, OutboundRow, ReceiptRow
from smscd.store.types import OutboundState

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.store._cursor import Statements

__all__ = ["FINAL_STATES", "ApiCallbacks", "DueCallback", "owe_callbacks"]

#: The states after which an API message changes no more.
FINAL_STATES = (
    OutboundState.DELIVERED.value,
    OutboundState.UNDELIVERABLE.value,
    OutboundState.FAILED.value,
    OutboundState.EXPIRED.value,
)

_OWE = prepared(
    insert(ApiCallbackRow).from_select(
        ["outbound_id", "client_id", "state", "created_at", "attempts", "next_attempt_at"],
        select(
            OutboundRow.id,
            OutboundRow.client_id,
            OutboundRow.state,
            bindparam("p_at", type_=AT),
            literal(0),
            bindparam("p_at2", type_=AT),
        )
        .join(ApiClientRow, ApiClientRow.id == OutboundRow.client_id)
        .where(
            OutboundRow.id.in_(bindparam("ids", expanding=True)),
            OutboundRow.state.in_(FINAL_STATES),
            ApiClientRow.callback_url.is_not(None),
            ~exists().where(ApiCallbackRow.outbound_id == OutboundRow.id),
        ),
    )
)


def owe_callbacks(conn: Statements, outbound_ids: Sequence[int], *, at: datetime) -> None:
    """The callbacks owed for these messages now final (see the module doc);
    nothing for replies to MOs, messages not final, or clients with no URL."""
    if outbound_ids:
        conn.execute(_OWE, {"ids": sorted(set(outbound_ids)), "p_at": at, "p_at2": at})


@attrs.frozen(kw_only=True)
class DueCallback:
    """A callback to post now."""

    id: int
    outbound_id: int
    client_ref: str
    client_name: str
    url: str
    state: str
    #: The final receipt's ``stat`` (DELIVRD, UNDELIV, ...), if one came.
    receipt_stat: str | None
    #: Posts already tried.
    attempts: int


class ApiCallbacks(StoreBase):
    """The callback sender's reads and verdicts; a part of ``SqlStore``."""

    def due_api_callbacks(self, *, now: datetime, limit: int = 100) -> list[DueCallback]:
        stat = (
            select(ReceiptRow.stat)
            .where(ReceiptRow.outbound_id == OutboundRow.id, ReceiptRow.final.is_(True))
            .order_by(ReceiptRow.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        stmt = (
            select(
                ApiCallbackRow.id,
                ApiCallbackRow.outbound_id,
                ApiCallbackRow.state,
                ApiCallbackRow.attempts,
                OutboundRow.client_ref,
                ApiClientRow.name,
                ApiClientRow.callback_url,
                stat.label("stat"),
            )
            .join(OutboundRow, OutboundRow.id == ApiCallbackRow.outbound_id)
            .join(ApiClientRow, ApiClientRow.id == ApiCallbackRow.client_id)
            .where(
                and_(ApiCallbackRow.done_at.is_(None), ApiCallbackRow.next_attempt_at <= now),
                ApiClientRow.callback_url.is_not(None),
                ApiClientRow.revoked_at.is_(None),
            )
            .order_by(ApiCallbackRow.next_attempt_at, ApiCallbackRow.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [
                DueCallback(
                    id=row.id,
                    outbound_id=row.outbound_id,
                    client_ref=row.client_ref or "",
                    client_name=row.name,
                    url=row.callback_url,
                    state=row.state,
                    receipt_stat=row.stat,
                    attempts=row.attempts,
                )
                for row in conn.execute(stmt)
            ]

    def api_callback_done(
        self, callback_id: int, *, outcome: str, error: str | None, now: datetime
    ) -> None:
        """Delivered (a 2xx: ``outcome="delivered"``) or given up (``"abandoned"``)."""
        with self._write() as conn:
            conn.execute(
                update(ApiCallbackRow)
                .where(ApiCallbackRow.id == callback_id)
                .values(
                    done_at=now,
                    outcome=outcome,
                    attempts=ApiCallbackRow.attempts + 1,
                    last_error=None if error is None else error[:200],
                )
            )

    def api_callback_retry(
        self, callback_id: int, *, error: str, next_attempt_at: datetime
    ) -> None:
        with self._write() as conn:
            conn.execute(
                update(ApiCallbackRow)
                .where(ApiCallbackRow.id == callback_id)
                .values(
                    attempts=ApiCallbackRow.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    last_error=error[:200],
                )
            )
