"""Intake: MOs committed before they are acknowledged, redeliveries told apart.

An MO with the same carrier, sender and text as one received within the
duplicate window is a redelivery: stored DUPLICATE, pointing at the original
(``duplicate_of``), and never answered again; unless the reply of that
original failed for good or expired, and then the subscriber asking again is
answered again.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import zip_longest
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, insert, or_, select, update

from smscd.reset import InboundMessage, InboundState
from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store._rows import AT
from smscd.store.models import InboundRow, OutboundRow
from smscd.store.types import OutboundState

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.reset import Decision
    from smscd.store._cursor import Statements
    from smscd.store.types import NewInbound

__all__ = ["Intake"]

#: The earlier MOs an MO may be a redelivery of: same carrier, sender and
#: text within the window, unless the reply of the MO they answer failed for
#: good or expired (then the subscriber who asks again is answered again).
_REPLY_GIVEN_UP = (
    OutboundState.FAILED.value,
    OutboundState.EXPIRED.value,
    OutboundState.UNDELIVERABLE.value,
)
_RECENT_SAME_TEXT = prepared(
    select(
        InboundRow.id,
        InboundRow.duplicate_of,
        InboundRow.carrier,
        InboundRow.msisdn,
        InboundRow.text,
        InboundRow.received_at,
    )
    .outerjoin(
        OutboundRow,
        OutboundRow.inbound_id == func.coalesce(InboundRow.duplicate_of, InboundRow.id),
    )
    .where(
        InboundRow.carrier.in_(bindparam("carriers", expanding=True)),
        InboundRow.msisdn.in_(bindparam("msisdns", expanding=True)),
        InboundRow.received_at >= bindparam("lo", type_=AT),
        InboundRow.received_at <= bindparam("hi", type_=AT),
        or_(OutboundRow.state.is_(None), OutboundRow.state.not_in(_REPLY_GIVEN_UP)),
    )
)
_INSERT_INBOUND = prepared(insert(InboundRow))
_POINT_TO_ORIGINAL = prepared(
    update(InboundRow)
    .where(InboundRow.id == bindparam("mo_id"))
    .values(duplicate_of=bindparam("p_original"))
)


class Intake(StoreBase):
    """``store_inbound`` of ``IntakeStore``; a part of ``SqlStore``."""

    def store_inbound(
        self, batch: Sequence[NewInbound], *, duplicate_window_s: float
    ) -> list[InboundMessage]:
        if not batch:
            return []
        with self._write() as conn:
            return self._insert_inbound(conn, batch, duplicate_window_s=duplicate_window_s)

    def _insert_inbound(
        self,
        conn: Statements,
        batch: Sequence[NewInbound],
        *,
        duplicate_window_s: float,
        decisions: Sequence[Decision | None] = (),
    ) -> list[InboundMessage]:
        """Insert ``batch``; ``decisions[i]`` (None, or missing: none) is
        the decision already made for ``batch[i]``: an MO that is not a
        redelivery is inserted DECIDED with it (the caller writes the rest of
        the decision in the same transaction), a redelivery stays DUPLICATE."""
        window = timedelta(seconds=duplicate_window_s)
        # The original of each MO if it is a redelivery: (False, id) of a stored
        # MO, or (True, index) of an MO earlier in this batch (its id is known
        # only after the insert; its redeliveries point at it right after).
        originals: list[tuple[bool, int] | None] = []
        if duplicate_window_s > 0:
            seen: dict[tuple[str, str, str], list[tuple[datetime, tuple[bool, int]]]] = {}
            earlier = conn.execute(
                _RECENT_SAME_TEXT,
                {
                    "carriers": sorted({mo.carrier for mo in batch}),
                    "msisdns": sorted({mo.msisdn for mo in batch}),
                    "lo": min(mo.received_at for mo in batch) - window,
                    "hi": max(mo.received_at for mo in batch),
                },
            ).all()
            for row in sorted(earlier, key=lambda r: r.id):
                seen.setdefault((row.carrier, row.msisdn, row.text), []).append(
                    (row.received_at, (False, row.duplicate_of or row.id))
                )
            for index, mo in enumerate(batch):
                # The latest earlier MO of the same key within the window.
                original: tuple[bool, int] | None = None
                candidates = seen.setdefault((mo.carrier, mo.msisdn, mo.text), [])
                for at, ref in reversed(candidates):
                    if mo.received_at - window <= at <= mo.received_at:
                        original = ref
                        break
                candidates.append((mo.received_at, original or (True, index)))
                originals.append(original)
        else:
            originals = [None] * len(batch)
        decided = [
            None if ref is not None else decision
            for ref, decision in zip_longest(originals, decisions[: len(batch)])
        ]
        ids = self._insert_numbered(
            conn,
            _INSERT_INBOUND,
            [
                {
                    "carrier": mo.carrier,
                    "source_addr": mo.source_addr,
                    "source_addr_ton": mo.source_addr_ton,
                    "source_addr_npi": mo.source_addr_npi,
                    "msisdn": mo.msisdn,
                    "destination_addr": mo.destination_addr,
                    "text": mo.text,
                    "received_at": mo.received_at,
                    "state": _state(ref, decision).value,
                    "duplicate_of": ref[1] if ref is not None and not ref[0] else None,
                    "claimed_by": self.owner,
                    "claimed_at": mo.received_at,
                    "outcome": None if decision is None else decision.outcome.value,
                    "bhxh_code": None if decision is None else decision.bhxh_code,
                    "decided_at": None if decision is None else decision.decided_at,
                }
                for mo, ref, decision in zip(batch, originals, decided, strict=True)
            ],
        )
        in_batch = [
            {"mo_id": new_id, "p_original": ids[ref[1]]}
            for new_id, ref in zip(ids, originals, strict=True)
            if ref is not None and ref[0]
        ]
        if in_batch:
            conn.execute(_POINT_TO_ORIGINAL, in_batch)

        return [
            InboundMessage(
                id=new_id,
                carrier=mo.carrier,
                source_addr=mo.source_addr,
                source_addr_ton=mo.source_addr_ton,
                source_addr_npi=mo.source_addr_npi,
                msisdn=mo.msisdn,
                destination_addr=mo.destination_addr,
                text=mo.text,
                received_at=mo.received_at,
                state=_state(ref, decision),
                outcome=None if decision is None else decision.outcome,
            )
            for mo, ref, decision, new_id in zip(batch, originals, decided, ids, strict=True)
        ]


def _state(original: tuple[bool, int] | None, decision: Decision | None) -> InboundState:
    if original is not None:
        return InboundState.DUPLICATE
    return InboundState.RECEIVED if decision is None else InboundState.DECIDED
