"""An in-memory ResetStore for the pipeline's tests.

It keeps the contract of ``smscd.reset.ResetStore`` where a test could notice:
``commit_decision`` is all-or-nothing (it works on copies and swaps them in only
at the end, so a failure injected after the password update leaves nothing
behind), refuses an MO that is not RECEIVED, and checks the Decision invariant
(a password hash if and only if RESET_OK). ``reset_counts`` counts successful
resets only, by the MO's number and the decision's code, since the given
instants. Every call is recorded in ``calls`` so tests can compare the work done.
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

from smscd.reset import (
    Account,
    ChargingMode,
    Decision,
    InboundMessage,
    InboundState,
    Outcome,
    ResetCounts,
    sender_key,
)
from smscd.store import AlreadyDecided, StoreUnavailable

__all__ = ["Charge", "FakeResetStore", "QueuedReply", "ResetRecord"]


@attrs.frozen(kw_only=True)
class ResetRecord:
    """A successful reset, for the rate-limit counts."""

    msisdn: str
    bhxh_code: str
    at: datetime


@attrs.frozen(kw_only=True)
class QueuedReply:
    outbound_id: int
    inbound_id: int
    destination_addr: str
    body: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Charge:
    inbound_id: int
    amount_vnd: int
    charging: ChargingMode


@attrs.define(kw_only=True)
class FakeResetStore:
    accounts: dict[str, Account] = attrs.Factory(dict)
    inbound: dict[int, InboundMessage] = attrs.Factory(dict)
    decisions: list[Decision] = attrs.Factory(list)
    outbox: list[QueuedReply] = attrs.Factory(list)
    charges: list[Charge] = attrs.Factory(list)
    resets: list[ResetRecord] = attrs.Factory(list)
    #: Names of the ResetStore methods called, in order.
    calls: list[str] = attrs.Factory(list)
    #: Make the next commits fail after the password update (then roll back).
    fail_commit_after_password_update: bool = False

    # --- test helpers ------------------------------------------------------

    def add_account(
        self,
        code: str,
        phone: str,
        *,
        e_transaction: bool = True,
        password_hash: str | None = None,
    ) -> Account:
        account = Account(
            bhxh_code=code, phone=phone, e_transaction=e_transaction, password_hash=password_hash
        )
        self.accounts[code] = account
        return account

    def receive(
        self,
        text: str,
        *,
        source_addr: str = "84327000686",
        ton: int = 1,
        received_at: datetime | None = None,
    ) -> InboundMessage:
        """Store an MO as the intake would (state RECEIVED)."""
        mo = InboundMessage(
            id=len(self.inbound) + 1,
            carrier="viettel",
            source_addr=source_addr,
            source_addr_ton=ton,
            source_addr_npi=1,
            msisdn=sender_key(source_addr, ton),
            destination_addr="8079",
            text=text,
            received_at=received_at or datetime(2021, 10, 1, tzinfo=UTC),
            state=InboundState.RECEIVED,
        )
        self.inbound[mo.id] = mo
        return mo

    def seed_resets(self, msisdn: str, code: str, *instants: datetime) -> None:
        self.resets.extend(ResetRecord(msisdn=msisdn, bhxh_code=code, at=at) for at in instants)

    # --- ResetStore ----------------------------------------------------------

    def find_account(self, bhxh_code: str) -> Account | None:
        self.calls.append("find_account")
        return self.accounts.get(bhxh_code)

    def reset_counts(
        self, *, msisdn: str, bhxh_code: str, day_start: datetime, month_start: datetime
    ) -> ResetCounts:
        self.calls.append("reset_counts")

        def count(match: str, field: str, since: datetime) -> int:
            return sum(1 for r in self.resets if getattr(r, field) == match and r.at >= since)

        return ResetCounts(
            phone_day=count(msisdn, "msisdn", day_start),
            phone_month=count(msisdn, "msisdn", month_start),
            code_day=count(bhxh_code, "bhxh_code", day_start),
            code_month=count(bhxh_code, "bhxh_code", month_start),
        )

    def commit_decision(self, decision: Decision) -> int:
        self.calls.append("commit_decision")
        mo = self.inbound.get(decision.inbound_id)
        if mo is None or mo.state is not InboundState.RECEIVED:
            raise AlreadyDecided(f"MO {decision.inbound_id} is not RECEIVED")
        if (decision.password_hash is not None) != (decision.outcome is Outcome.RESET_OK):
            raise ValueError("a password hash if and only if RESET_OK")
        # Work on copies; swap them in only when everything succeeded.
        inbound = dict(self.inbound)
        accounts = dict(self.accounts)
        resets = list(self.resets)
        inbound[mo.id] = attrs.evolve(mo, state=InboundState.DECIDED, outcome=decision.outcome)
        if decision.outcome is Outcome.RESET_OK:
            assert decision.bhxh_code is not None
            account = accounts[decision.bhxh_code]
            accounts[decision.bhxh_code] = attrs.evolve(
                account, password_hash=decision.password_hash, must_change=True
            )
            resets.append(
                ResetRecord(msisdn=mo.msisdn, bhxh_code=decision.bhxh_code, at=decision.decided_at)
            )
        if self.fail_commit_after_password_update:
            raise StoreUnavailable("simulated failure inside the transaction")
        outbound_id = len(self.outbox) + 1
        reply = QueuedReply(
            outbound_id=outbound_id,
            inbound_id=mo.id,
            destination_addr=mo.source_addr,
            body=decision.reply_text,
        )
        charge = Charge(
            inbound_id=mo.id, amount_vnd=decision.charge_vnd, charging=decision.charging
        )
        self.inbound = inbound
        self.accounts = accounts
        self.resets = resets
        self.outbox = [*self.outbox, reply]
        self.charges = [*self.charges, charge]
        self.decisions = [*self.decisions, decision]
        return outbound_id
