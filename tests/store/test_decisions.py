from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from smscd.reset import ChargingMode, InboundState, Outcome
from smscd.store.types import AlreadyDecided, OutboundState, StoreError, StoreUnavailable
from tests.store.helpers import (
    CODE,
    OK_TEXT,
    PHONE,
    T0,
    add_account,
    add_mo,
    decision,
    rows,
    scalar,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from smscd.store.sql import SqlStore

OLD_HASH = "$argon2id$old"


def _set_old_hash(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE accounts SET password_hash = :h WHERE bhxh_code = :c"),
            {"h": OLD_HASH, "c": CODE},
        )


def test_reset_ok_commits_password_reply_and_charge(store: SqlStore) -> None:
    add_account(store)
    mo = add_mo(store)
    d = decision(mo)
    outbound_id = store.commit_decision(d)

    account = store.find_account(CODE)
    assert account is not None
    assert account.password_hash == d.password_hash
    assert account.must_change is True
    assert rows(store, "SELECT state, outcome, bhxh_code FROM inbound_messages") == [
        ("decided", "reset_ok", CODE)
    ]
    assert rows(
        store,
        "SELECT id, inbound_id, carrier, destination_addr, dest_addr_ton, dest_addr_npi, body,"
        " state, attempts FROM outbound_messages",
    ) == [(outbound_id, mo.id, "viettel", "0327000686", 0, 1, OK_TEXT, "queued", 0)]
    assert rows(store, "SELECT inbound_id, carrier, amount_vnd, mode, state FROM charges") == [
        (mo.id, "viettel", 1000, "mo", "final")
    ]
    (claimed,) = store.claim_outbound(carrier="viettel", now=d.decided_at, limit=10, lease_s=30)
    assert claimed.id == outbound_id
    assert claimed.state is OutboundState.QUEUED
    assert claimed.next_attempt_at == d.decided_at  # tz-aware UTC round trip


def test_mismatch_leaves_the_account_alone(store: SqlStore) -> None:
    add_account(store)
    _set_old_hash(store)
    mo = add_mo(store, msisdn="84912345678", source_addr="84912345678")
    store.commit_decision(decision(mo, outcome=Outcome.MISMATCH))
    account = store.find_account(CODE)
    assert account is not None
    assert (account.password_hash, account.must_change) == (OLD_HASH, False)
    assert rows(store, "SELECT state, outcome FROM inbound_messages") == [("decided", "mismatch")]
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == 1


def test_mt_charging_starts_pending(store: SqlStore) -> None:
    mo = add_mo(store, text="hello")
    store.commit_decision(
        decision(mo, outcome=Outcome.BAD_SYNTAX, code=None, charging=ChargingMode.MT)
    )
    assert rows(store, "SELECT mode, state, finalized_at FROM charges") == [("mt", "pending", None)]


def test_replay_is_already_decided_and_changes_nothing(store: SqlStore) -> None:
    add_account(store)
    mo = add_mo(store)
    store.commit_decision(decision(mo))
    with pytest.raises(AlreadyDecided):
        store.commit_decision(decision(mo, outcome=Outcome.MISMATCH, at=T0 + timedelta(hours=1)))
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == 1
    assert scalar(store, "SELECT count(*) FROM charges") == 1
    assert rows(store, "SELECT outcome FROM inbound_messages") == [("reset_ok",)]


def test_unknown_inbound_is_an_error(store: SqlStore) -> None:
    mo = add_mo(store)
    with pytest.raises(StoreError, match="no inbound message"):
        store.commit_decision(decision(attrs.evolve(mo, id=mo.id + 99)))


def test_a_failure_before_commit_leaves_nothing(store: SqlStore) -> None:
    """Invariant 2: password, reply and charge are one transaction."""
    add_account(store)
    _set_old_hash(store)
    mo = add_mo(store)
    seen: list[str] = []

    def explode(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("BEGIN", "SELECT")):
            seen.append(" ".join(statement.split()[:3]))
        if statement.startswith("INSERT INTO charges"):
            raise sa.exc.OperationalError(statement, {}, Exception("disk I/O error (injected)"))

    event.listen(store.engine, "before_cursor_execute", explode)
    try:
        with pytest.raises(StoreUnavailable, match="injected"):
            store.commit_decision(decision(mo))
    finally:
        event.remove(store.engine, "before_cursor_execute", explode)
    # The password update and the reply were executed before the failure...
    assert seen == [
        "UPDATE inbound_messages SET",
        "UPDATE accounts SET",
        "INSERT INTO outbound_messages",
        "INSERT INTO charges",
    ]
    # ...and rolled back with it.
    account = store.find_account(CODE)
    assert account is not None
    assert (account.password_hash, account.must_change) == (OLD_HASH, False)
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == 0
    assert scalar(store, "SELECT count(*) FROM charges") == 0
    (again,) = store.claim_inbound(limit=10)
    assert again.id == mo.id
    assert again.state is InboundState.RECEIVED
    store.commit_decision(decision(mo))  # and it can be decided afterwards


def test_two_stores_never_both_decide_one_mo(
    store: SqlStore, store_factory: Callable[[], SqlStore]
) -> None:
    add_account(store)
    mos = [add_mo(store, text=f"BH MK {CODE} {i}") for i in range(10)]
    others = [store_factory(), store_factory()]
    results: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def work(k: int) -> None:
        barrier.wait(timeout=10)
        for mo in mos:
            try:
                others[k].commit_decision(decision(mo, outcome=Outcome.MISMATCH))
                results[k].append("ok")
            except AlreadyDecided:
                results[k].append("already")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results[0].count("ok") + results[1].count("ok") == len(mos)
    assert all(a != b for a, b in zip(results[0], results[1], strict=True))
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == len(mos)
    assert scalar(store, "SELECT count(*) FROM charges") == len(mos)


def test_find_account(store: SqlStore) -> None:
    assert store.find_account(CODE) is None
    add_account(store)
    account = store.find_account(CODE)
    assert account is not None
    assert (account.bhxh_code, account.phone, account.e_transaction) == (CODE, PHONE, True)
    assert account.password_hash is None


def test_find_accounts_answers_every_code_asked_for_in_one_call(store: SqlStore) -> None:
    add_account(store)
    add_account(store, "0000000001", "84912345678")
    found = store.find_accounts([CODE, "9999999999", CODE, "0000000001"])
    assert found.keys() == {CODE, "9999999999", "0000000001"}
    assert found["9999999999"] is None
    assert found[CODE] == store.find_account(CODE)
    assert found["0000000001"] == store.find_account("0000000001")
    assert store.find_accounts([]) == {}


def test_sql_store_satisfies_the_protocols(store: SqlStore) -> None:
    from smscd.reset import ResetStore
    from smscd.store.types import DecisionStore, IntakeStore, OutboxStore

    # mypy checks these assignments against the pipeline's Protocol (smscd.reset)
    # and the store's own (smscd.store.types).
    reset: ResetStore = store
    decisions: DecisionStore = store
    intake: IntakeStore = store
    outbox: OutboxStore = store
    assert [reset.find_account("0000000000"), intake.claim_inbound(limit=1)] == [None, []]
    assert decisions.commit_decisions([]) == []
    assert outbox.outbox_depth() == {}
