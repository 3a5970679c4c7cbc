"""Containment: who holds an item, what to set aside, when a reply expires.

Theory of operation
-------------------
A failure that belongs to one item must stay with that item. Three mechanisms,
all in the store so that they survive the process:

**Claims.** Every MO waiting for its decision (RECEIVED) and every reply
leased for a submit carries ``claimed_by``, the token of the daemon process
holding it (``SqlStore.owner``). A process that finishes an item moves it on
(DECIDED, ACCEPTED, retry scheduled...), and a process that stops cleanly
releases what it still holds (:meth:`Containment.release_own`). So an item
found held by *another* process was in progress when that process died; its
``claims`` counts such deaths. A daemon that takes an item up with
``claims`` already at :data:`MAX_CLAIMS` does not take it: the item is
quarantined instead (stage ``recovery``). A row that kills the daemon that
handles it therefore kills at most two processes, never a third: no crash
loop. On SQLite the daemon is the store's sole user (the daemon lock), so at
start everything held is a dead predecessor's (:meth:`release_abandoned`);
on PostgreSQL an MO held by another process is taken over only once its
claim is ``stale_s`` old (that daemon may be alive and busy), a reply once its
lease has run out.

**Quarantine.** An item whose processing failed on its own data (the
pipeline raised, the SMSC's response could not be recorded...) is moved to
QUARANTINED with the stage and the reason, and nothing picks it up again
until an operator retries or drops it (``smscd quarantine``; the
``Quarantine`` part of ``SqlStore``, in ``_quarantine``).

**Expiry.** A reply that the SMSC has not accepted within ``max_age_s``, or
after ``max_attempts`` submits, is EXPIRED: its body is masked (no stale
password is ever sent, none lingers) and an MT-mode charge is voided (an
MO-mode charge stays: the carrier billed the MO when it was sent). Quarantined
replies expire the same way. A reply under a live lease is left to its
submitter's verdict first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
from sqlalchemy import and_, bindparam, case, or_, select, update

from smscd.reset import ChargingMode, InboundMessage, InboundState
from smscd.store._api_callbacks import owe_callbacks
from smscd.store._base import StoreBase
from smscd.store._masking import mask_body
from smscd.store._quarantine import quarantine_mos, quarantine_replies
from smscd.store._rows import (
    INBOUND_COLUMNS,
    OUTBOUND_COLUMNS,
    inbound_from_row,
    of_any_carrier,
    outbound_from_row,
)
from smscd.store.models import ChargeRow, InboundRow, OutboundRow
from smscd.store.types import OutboundMessage, OutboundState, QuarantinedItem

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MAX_CLAIMS", "Containment", "ExpiredReply"]

#: A process taking up an item that this many processes died holding
#: quarantines it instead.
MAX_CLAIMS = 2


@attrs.frozen(kw_only=True)
class ExpiredReply:
    """A reply :meth:`Containment.expire_replies` expired."""

    outbound_id: int
    #: None for an API client's MT.
    inbound_id: int | None
    carrier: str
    destination_addr: str
    attempts: int


class Containment(StoreBase):
    """Claims and expiry (quarantine: ``_quarantine``); a part of ``SqlStore``."""

    # -- taking items up ------------------------------------------------------

    def claim_inbound(self, *, limit: int) -> list[InboundMessage]:
        """``recover_inbound`` now, taking over any other process's claim."""
        now = datetime.now(UTC)
        return self.recover_inbound(limit=limit, now=now, stale_s=0.0)[0]

    def recover_inbound(
        self, *, limit: int, now: datetime, stale_s: float, after_id: int = 0
    ) -> tuple[list[InboundMessage], list[QuarantinedItem]]:
        """MOs left RECEIVED, oldest first from ``after_id`` (excluded), claimed
        for this process: those it holds itself or nobody holds, and those
        another process has held for ``stale_s`` (which count one more claim).
        Those at ``MAX_CLAIMS`` are quarantined instead and returned apart.
        At most ``limit`` in all: fewer means there were no more."""
        stale = now - timedelta(seconds=stale_s)
        owner = self.owner
        foreign = and_(InboundRow.claimed_by.is_not(None), InboundRow.claimed_by != owner)
        stmt = (
            select(InboundRow.id, InboundRow.claims, foreign.label("foreign"))
            .where(
                InboundRow.state == InboundState.RECEIVED.value,
                InboundRow.id > after_id,
                or_(~foreign, InboundRow.claimed_at < stale, InboundRow.claimed_at.is_(None)),
            )
            .order_by(InboundRow.id)
            .limit(limit)
        )
        if not self._finds_any(stmt):
            return [], []
        if self._postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        with self._write() as conn:
            rows = conn.execute(stmt).all()
            taken = [r.id for r in rows if r.claims + bool(r.foreign) < MAX_CLAIMS]
            doomed = [r.id for r in rows if r.claims + bool(r.foreign) >= MAX_CLAIMS]
            if rows:
                conn.execute(
                    update(InboundRow)
                    .where(InboundRow.id.in_([r.id for r in rows]))
                    .values(
                        claims=InboundRow.claims + case((foreign, 1), else_=0),
                        claimed_by=owner,
                        claimed_at=now,
                    )
                )
            quarantined = quarantine_mos(
                conn, doomed, stage="recovery", reason=_abandoned(), now=now
            )
            messages = (
                [
                    inbound_from_row(row)
                    for row in conn.execute(
                        select(*INBOUND_COLUMNS)
                        .where(InboundRow.id.in_(taken))
                        .order_by(InboundRow.id)
                    )
                ]
                if taken
                else []
            )
        return messages, quarantined

    def claim_outbound(
        self, *, carrier: str, now: datetime, limit: int, lease_s: float
    ) -> list[OutboundMessage]:
        """``lease_outbound``, without the replies it quarantined."""
        return self.lease_outbound(carrier=carrier, now=now, limit=limit, lease_s=lease_s)[0]

    def lease_outbound(
        self, *, carrier: str, now: datetime, limit: int, lease_s: float
    ) -> tuple[list[OutboundMessage], list[QuarantinedItem]]:
        """Queued replies of ``carrier`` due at ``now``, oldest first, leased to
        this process for ``lease_s`` (FOR UPDATE SKIP LOCKED on PostgreSQL). A
        reply whose lease ran out in another process's hands counts one more
        claim; one at ``MAX_CLAIMS`` is quarantined instead and returned apart."""
        owner = self.owner
        free = or_(OutboundRow.lease_until.is_(None), OutboundRow.lease_until <= now)
        foreign = and_(OutboundRow.claimed_by.is_not(None), OutboundRow.claimed_by != owner)
        due = (
            select(OutboundRow.id, OutboundRow.claims, foreign.label("foreign"))
            .where(
                OutboundRow.carrier == carrier,
                OutboundRow.state == OutboundState.QUEUED.value,
                OutboundRow.next_attempt_at <= now,
                free,
            )
            .order_by(OutboundRow.id)
            .limit(limit)
        )
        if not self._finds_any(due):
            return [], []
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        with self._write() as conn:
            rows = conn.execute(due).all()
            if not rows:
                return [], []
            taken = [r.id for r in rows if r.claims + bool(r.foreign) < MAX_CLAIMS]
            doomed = [r.id for r in rows if r.claims + bool(r.foreign) >= MAX_CLAIMS]
            conn.execute(
                update(OutboundRow)
                .where(OutboundRow.id.in_([r.id for r in rows]))
                .values(
                    claims=OutboundRow.claims + case((foreign, 1), else_=0),
                    claimed_by=owner,
                    lease_until=now + timedelta(seconds=lease_s),
                )
            )
            quarantined = quarantine_replies(
                conn, doomed, stage="recovery", reason=_abandoned(), now=now
            )
            messages = (
                [
                    outbound_from_row(row)
                    for row in conn.execute(
                        select(*OUTBOUND_COLUMNS)
                        .where(OutboundRow.id.in_(taken))
                        .order_by(OutboundRow.id)
                    )
                ]
                if taken
                else []
            )
        return messages, quarantined

    def release_abandoned(self) -> tuple[int, int]:
        """At the start of the store's sole user (SQLite, under the daemon
        lock): whatever another process holds, it held when it died. Count one
        claim on each such MO and reply and free them; returns how many MOs
        and replies."""
        owner = self.owner
        with self._write() as conn:
            mos = conn.execute(
                update(InboundRow)
                .where(
                    InboundRow.state == InboundState.RECEIVED.value,
                    InboundRow.claimed_by.is_not(None),
                    InboundRow.claimed_by != owner,
                )
                .values(claims=InboundRow.claims + 1, claimed_by=None, claimed_at=None)
            ).rowcount
            replies = conn.execute(
                update(OutboundRow)
                .where(
                    of_any_carrier(),
                    OutboundRow.state == OutboundState.QUEUED.value,
                    or_(OutboundRow.lease_until.is_not(None), OutboundRow.claimed_by.is_not(None)),
                )
                .values(
                    claims=OutboundRow.claims
                    + case(
                        (
                            and_(
                                OutboundRow.claimed_by.is_not(None),
                                OutboundRow.claimed_by != owner,
                            ),
                            1,
                        ),
                        else_=0,
                    ),
                    claimed_by=None,
                    lease_until=None,
                )
            ).rowcount
        return int(mos), int(replies)

    def release_own(self) -> tuple[int, int]:
        """A clean stop: free the MOs and replies this process still holds
        (no claim counted: nobody died holding them)."""
        with self._write() as conn:
            mos = conn.execute(
                update(InboundRow)
                .where(
                    InboundRow.state == InboundState.RECEIVED.value,
                    InboundRow.claimed_by == self.owner,
                )
                .values(claimed_by=None, claimed_at=None)
            ).rowcount
            replies = conn.execute(
                update(OutboundRow)
                .where(
                    of_any_carrier(),
                    OutboundRow.state == OutboundState.QUEUED.value,
                    OutboundRow.claimed_by == self.owner,
                )
                .values(claimed_by=None, lease_until=None)
            ).rowcount
        return int(mos), int(replies)

    def release_leases(self, ids: Sequence[int] | None = None) -> int:
        """Free the lease of queued replies: of ``ids``, or of every one; returns
        how many were held.

        Every one: only for a daemon that knows it is the store's sole user
        (SQLite, under the daemon lock): the leases are a dead predecessor's,
        and waiting them out would delay its replies by up to a lease. ``ids``:
        replies born leased to the caller that it cannot submit now (so that a
        claimer takes them at once, not a lease later)."""
        stmt = update(OutboundRow).where(
            OutboundRow.state == OutboundState.QUEUED.value,
            OutboundRow.lease_until.is_not(None),
        )
        if ids is not None:
            if not ids:
                return 0
            stmt = stmt.where(OutboundRow.id.in_(sorted(ids)))
        if ids is None:
            return self.release_abandoned()[1]
        with self._write() as conn:
            return int(conn.execute(stmt.values(lease_until=None, claimed_by=None)).rowcount)

    # -- expiry -------------------------------------------------------------------

    def expire_replies(
        self, *, now: datetime, max_age_s: float, max_attempts: int, limit: int = 500
    ) -> list[ExpiredReply]:
        """Expire the queued or quarantined replies created more than
        ``max_age_s`` ago or submitted ``max_attempts`` times, but not those
        under a live lease (their submitter's verdict comes first)."""
        oldest = now - timedelta(seconds=max_age_s)
        stmt = (
            select(
                OutboundRow.id,
                OutboundRow.inbound_id,
                OutboundRow.carrier,
                OutboundRow.destination_addr,
                OutboundRow.attempts,
                OutboundRow.body,
            )
            .where(
                of_any_carrier(),
                OutboundRow.state.in_(
                    [OutboundState.QUEUED.value, OutboundState.QUARANTINED.value]
                ),
                or_(OutboundRow.created_at < oldest, OutboundRow.attempts >= max_attempts),
                or_(OutboundRow.lease_until.is_(None), OutboundRow.lease_until <= now),
            )
            .order_by(OutboundRow.id)
            .limit(limit)
        )
        if not self._finds_any(stmt):
            return []
        if self._postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        with self._write() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                return []
            conn.execute(
                update(OutboundRow)
                .where(OutboundRow.id == bindparam("oid"))
                .values(
                    state=OutboundState.EXPIRED.value,
                    body=bindparam("p_body"),
                    final_at=now,
                    lease_until=None,
                    claimed_by=None,
                ),
                [{"oid": row.id, "p_body": mask_body(row.body)} for row in rows],
            )
            conn.execute(
                update(ChargeRow)
                .where(
                    or_(
                        ChargeRow.inbound_id.in_(
                            [row.inbound_id for row in rows if row.inbound_id is not None]
                        ),
                        ChargeRow.outbound_id.in_([row.id for row in rows]),
                    ),
                    ChargeRow.mode == ChargingMode.MT.value,
                    ChargeRow.state == "pending",
                )
                .values(state="void", finalized_at=now)
            )
            owe_callbacks(conn, [row.id for row in rows], at=now)
        return [
            ExpiredReply(
                outbound_id=row.id,
                inbound_id=row.inbound_id,
                carrier=row.carrier,
                destination_addr=row.destination_addr,
                attempts=row.attempts,
            )
            for row in rows
        ]


def _abandoned() -> str:
    return f"in progress when {MAX_CLAIMS} daemons stopped"
