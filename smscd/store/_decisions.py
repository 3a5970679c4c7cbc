"""Decisions: an MO flipped from RECEIVED to DECIDED, with in the same
transaction its new password (RESET_OK), its queued reply and its charge.

The flip is a conditional UPDATE (``state = 'received'``), so two workers or
two daemons can never both decide one MO (invariants 2, 3 and 5: UNIQUE
(inbound_id) on the replies and the charges backs it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from smscd.reset import ChargingMode, Decision, InboundMessage, InboundState, Outcome
from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store._rows import AT
from smscd.store.models import AccountRow, ChargeRow, InboundRow, OutboundRow
from smscd.store.types import AlreadyDecided, OutboundState, StoreError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from smscd.store._cursor import Statements

__all__ = [
    "Decisions",
    "check_decisions",
    "set_passwords",
]


def _decided_params(decisions: Iterable[tuple[Decision, object]]) -> list[dict[str, Any]]:
    """The parameters of ``_DECIDE_MANY`` for these decisions."""
    return [
        {
            "mo_id": decision.inbound_id,
            "p_outcome": decision.outcome.value,
            "p_code": decision.bhxh_code,
            "p_at": decision.decided_at,
        }
        for decision, _mo in decisions
    ]


def check_decisions(decisions: Iterable[Decision]) -> None:
    """ValueError unless each decision carries a password hash (and a code) if
    and only if it is a RESET_OK."""
    for decision in decisions:
        reset = decision.outcome is Outcome.RESET_OK
        if reset and (decision.password_hash is None or decision.bhxh_code is None):
            raise ValueError("a RESET_OK decision needs a code and a password hash")
        if not reset and decision.password_hash is not None:
            raise ValueError("only a RESET_OK decision carries a password hash")


_DECIDE = prepared(
    update(InboundRow)
    .where(
        InboundRow.id == bindparam("mo_id"),
        InboundRow.state == InboundState.RECEIVED.value,
    )
    .values(
        state=InboundState.DECIDED.value,
        outcome=bindparam("p_outcome"),
        bhxh_code=bindparam("p_code"),
        decided_at=bindparam("p_at", type_=AT),
    )
    .returning(
        InboundRow.carrier,
        InboundRow.source_addr,
        InboundRow.source_addr_ton,
        InboundRow.source_addr_npi,
    )
)
_INBOUND_STATE = prepared(select(InboundRow.state).where(InboundRow.id == bindparam("mo_id")))
_UNDECIDED = prepared(
    select(
        InboundRow.id,
        InboundRow.carrier,
        InboundRow.source_addr,
        InboundRow.source_addr_ton,
        InboundRow.source_addr_npi,
    ).where(
        InboundRow.id.in_(bindparam("ids", expanding=True)),
        InboundRow.state == InboundState.RECEIVED.value,
    )
)
_DECIDE_MANY = prepared(
    update(InboundRow)
    .where(
        InboundRow.id == bindparam("mo_id"),
        InboundRow.state == InboundState.RECEIVED.value,
    )
    .values(
        state=InboundState.DECIDED.value,
        outcome=bindparam("p_outcome"),
        bhxh_code=bindparam("p_code"),
        decided_at=bindparam("p_at", type_=AT),
    )
)
_p_changed_at = bindparam("p_at", type_=AT)
_SET_PASSWORD = prepared(
    update(AccountRow)
    .where(AccountRow.bhxh_code == bindparam("p_code"))
    .values(
        password_hash=bindparam("p_hash"),
        must_change=True,
        password_changed_at=_p_changed_at,
        updated_at=_p_changed_at,
    )
)
_QUEUE_REPLY = prepared(insert(OutboundRow))
_RECORD_CHARGE = prepared(insert(ChargeRow))


def set_passwords(conn: Statements, decisions: Iterable[Decision]) -> None:
    """The password part of committing decisions, in the caller's transaction:
    each RESET_OK's new hash and must-change flag on its account (the others
    change nothing). Raises StoreError for a RESET_OK whose code has no
    account. Decisions with an SMS reply add their reply and charge
    (``_apply_decisions``); an API reset has neither (``_api_resets``)."""
    for decision in decisions:
        if decision.outcome is not Outcome.RESET_OK:
            continue
        changed = conn.execute(
            _SET_PASSWORD,
            {
                "p_code": decision.bhxh_code,
                "p_hash": decision.password_hash,
                "p_at": decision.decided_at,
            },
        ).rowcount
        if changed != 1:
            raise StoreError(f"no account {decision.bhxh_code} to reset")


class Decisions(StoreBase):
    """``commit_decision`` of ``smscd.reset.ResetStore`` and the daemon's group
    commit (``DecisionStore``); a part of ``SqlStore``."""

    def commit_decision(self, decision: Decision) -> int:
        (outbound_id,) = self.commit_decisions([decision])
        if outbound_id is None:
            with self._read() as conn:
                exists = conn.execute(_INBOUND_STATE, {"mo_id": decision.inbound_id}).first()
            if exists is None:
                raise StoreError(f"no inbound message {decision.inbound_id}")
            raise AlreadyDecided(
                f"inbound message {decision.inbound_id} is {exists.state}, not received"
            )
        return outbound_id

    def commit_decisions(
        self, decisions: Sequence[Decision], *, lease_s: float | None = None
    ) -> list[int | None]:
        """``commit_decision`` for several MOs in ONE transaction (the daemon's
        group commit). Returns each decision's outbound id, or None for an MO
        that is not RECEIVED (already decided, or unknown): nothing was written
        for that one. Any other failure (a RESET_OK for a code with no account,
        a database error) rolls back the whole batch and raises.

        With ``lease_s`` the queued replies are born leased to the caller, who
        submits them itself (no claim needed); if it dies first, the lease runs
        out and any claimer sends them."""
        check_decisions(decisions)
        if not decisions:
            return []
        with self._write() as conn:
            flipped = (
                self._flip_one(conn, decisions[0])
                if len(decisions) == 1
                else self._flip_many(conn, decisions)
            )
            results = self._apply_decisions(conn, flipped, lease_s=lease_s)
        # The first decision of an MO wins; a second one in the same batch is None.
        answers: list[int | None] = []
        for decision in decisions:
            answers.append(results.pop(decision.inbound_id, None))
        return answers

    def _apply_decisions(
        self,
        conn: Statements,
        flipped: Sequence[tuple[Decision, InboundMessage | Any]],
        *,
        lease_s: float | None,
    ) -> dict[int, int]:
        """The writes of decisions whose MOs were just flipped to DECIDED: the new
        passwords, the queued replies, the charges. Returns the outbound id of
        each MO id."""
        if not flipped:
            return {}
        set_passwords(conn, (decision for decision, _mo in flipped))
        rows = [
            {
                "inbound_id": decision.inbound_id,
                "carrier": mo.carrier,
                "destination_addr": mo.source_addr,
                "dest_addr_ton": mo.source_addr_ton,
                "dest_addr_npi": mo.source_addr_npi,
                "body": decision.reply_text,
                "state": OutboundState.QUEUED.value,
                "attempts": 0,
                "next_attempt_at": decision.decided_at,
                "created_at": decision.decided_at,
                "lease_until": (
                    None if lease_s is None else decision.decided_at + timedelta(seconds=lease_s)
                ),
                "claimed_by": None if lease_s is None else self.owner,
            }
            for decision, mo in flipped
        ]
        ids = self._insert_numbered(conn, _QUEUE_REPLY, rows)
        results = {
            decision.inbound_id: new_id
            for (decision, _mo), new_id in zip(flipped, ids, strict=True)
        }
        conn.execute(
            _RECORD_CHARGE,
            [
                {
                    "inbound_id": decision.inbound_id,
                    "carrier": mo.carrier,
                    "amount_vnd": decision.charge_vnd,
                    "mode": decision.charging.value,
                    "state": "final" if decision.charging is ChargingMode.MO else "pending",
                    "created_at": decision.decided_at,
                    "finalized_at": (
                        decision.decided_at if decision.charging is ChargingMode.MO else None
                    ),
                }
                for decision, mo in flipped
            ],
        )
        return results

    @staticmethod
    def _flip_one(conn: Statements, decision: Decision) -> list[tuple[Decision, Any]]:
        """RECEIVED -> DECIDED for one MO: one conditional UPDATE ... RETURNING."""
        mo = conn.execute(
            _DECIDE,
            {
                "mo_id": decision.inbound_id,
                "p_outcome": decision.outcome.value,
                "p_code": decision.bhxh_code,
                "p_at": decision.decided_at,
            },
        ).first()
        return [] if mo is None else [(decision, mo)]

    def _flip_many(
        self, conn: Statements, decisions: Sequence[Decision]
    ) -> list[tuple[Decision, Any]]:
        """RECEIVED -> DECIDED for a batch: which MOs are still RECEIVED (one
        SELECT; the transaction holds SQLite's write lock, and on PostgreSQL the
        rows are locked FOR UPDATE, so no one else decides them meanwhile), then
        one executemany UPDATE (still conditional). The first decision of an MO
        in the batch wins."""
        stmt = _UNDECIDED.with_for_update() if self._postgres else _UNDECIDED
        rows = {
            row.id: row
            for row in conn.execute(stmt, {"ids": sorted({d.inbound_id for d in decisions})})
        }
        flipped: list[tuple[Decision, Any]] = []
        for decision in decisions:
            row = rows.pop(decision.inbound_id, None)
            if row is not None:
                flipped.append((decision, row))
        if flipped:
            result = conn.execute(_DECIDE_MANY, _decided_params(flipped))
            if result.rowcount not in (-1, len(flipped)):
                raise StoreError("inbound messages changed state while being decided")
        return flipped
