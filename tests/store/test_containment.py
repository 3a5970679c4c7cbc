"""Containment in the store: a row that was in progress when two daemons in a
row died is quarantined, never taken up a third time; quarantined items wait
for an operator; replies expire with their password masked and an MT charge
voided; data the database refuses is StoreRejected, not "unavailable"."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from smscd.reset import ChargingMode, InboundState, Outcome
from smscd.store.sql import SqlStore, open_store
from smscd.store.types import NewInbound, OutboundState, StoreRejected
from tests.store.helpers import (
    PASSWORD,
    T0,
    add_account,
    add_mo,
    decision,
    new_mo,
    rows,
    scalar,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

NOW = T0 + timedelta(seconds=1)


def _queued_reply(store: SqlStore, *, charging: ChargingMode = ChargingMode.MO) -> int:
    add_account(store)
    mo = add_mo(store)
    return store.commit_decision(decision(mo, charging=charging))


def test_an_mo_held_by_two_dead_daemons_is_quarantined_not_taken_a_third_time(
    store_factory: Callable[[], SqlStore],
) -> None:
    first = store_factory()
    (mo,) = first.store_inbound([new_mo()], duplicate_window_s=0)  # held by the intake
    # The first daemon dies; the second takes the MO over once its claim is stale.
    second = store_factory()
    taken, quarantined = second.recover_inbound(limit=10, now=NOW, stale_s=0)
    assert ([m.id for m in taken], quarantined) == ([mo.id], [])
    # It dies too; the third daemon sets the MO aside instead of deciding it.
    third = store_factory()
    later = NOW + timedelta(seconds=1)
    taken, quarantined = third.recover_inbound(limit=10, now=later, stale_s=0)
    assert taken == []
    assert [(q.kind, q.id, q.stage, q.claims) for q in quarantined] == [
        ("mo", mo.id, "recovery", 2)
    ]
    assert rows(third, "SELECT state FROM inbound_messages") == [("quarantined",)]
    assert third.recover_inbound(limit=10, now=later, stale_s=0) == ([], [])


def test_a_live_daemon_s_fresh_claim_is_left_alone(
    store_factory: Callable[[], SqlStore],
) -> None:
    """PostgreSQL's case: another daemon holds the MO and may be busy with it."""
    first, second = store_factory(), store_factory()
    (mo,) = first.store_inbound([new_mo(at=NOW)], duplicate_window_s=0)
    assert second.recover_inbound(limit=10, now=NOW, stale_s=60) == ([], [])
    # Its own holder takes it up again (a store error while deciding) at no cost.
    taken, _ = first.recover_inbound(limit=10, now=NOW, stale_s=60)
    assert [m.id for m in taken] == [mo.id]
    assert scalar(first, "SELECT claims FROM inbound_messages") == 0


def test_a_clean_stop_releases_what_it_holds_without_a_claim(
    store_factory: Callable[[], SqlStore],
) -> None:
    first = store_factory()
    first.store_inbound([new_mo()], duplicate_window_s=0)
    assert first.release_own() == (1, 0)
    for _ in range(3):  # three restarts, each stopping cleanly
        daemon = store_factory()
        taken, quarantined = daemon.recover_inbound(limit=10, now=NOW, stale_s=60)
        assert (len(taken), quarantined) == (1, [])
        daemon.release_own()
    assert scalar(first, "SELECT claims FROM inbound_messages") == 0


def test_sqlite_start_counts_what_its_dead_predecessor_held(
    store_factory: Callable[[], SqlStore],
) -> None:
    dead = store_factory()
    dead.store_inbound([new_mo()], duplicate_window_s=0)
    reply_id = _queued_reply(dead)
    assert dead.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60)
    restarted = store_factory()
    assert restarted.release_abandoned() == (1, 1)
    assert rows(
        restarted, "SELECT claims, claimed_by FROM inbound_messages WHERE state = 'received'"
    ) == [(1, None)]
    assert rows(
        restarted, "SELECT claims, lease_until FROM outbound_messages WHERE id = :i", i=reply_id
    ) == [(1, None)]


def test_a_reply_leased_by_two_dead_daemons_is_quarantined(
    store_factory: Callable[[], SqlStore],
) -> None:
    first = store_factory()
    reply_id = _queued_reply(first)
    first.release_own()
    later = NOW
    holders = [store_factory() for _ in range(3)]
    for holder in holders[:2]:
        later += timedelta(seconds=61)  # the previous lease ran out
        taken, quarantined = holder.lease_outbound(
            carrier="viettel", now=later, limit=10, lease_s=60
        )
        assert ([m.id for m in taken], quarantined) == ([reply_id], [])
    later += timedelta(seconds=61)
    taken, quarantined = holders[2].lease_outbound(
        carrier="viettel", now=later, limit=10, lease_s=60
    )
    assert taken == []
    assert [(q.kind, q.id, q.stage) for q in quarantined] == [("reply", reply_id, "recovery")]


def test_quarantine_list_retry_and_drop(store: SqlStore) -> None:
    mo = add_mo(store)
    reply_id = _queued_reply(store, charging=ChargingMode.MT)
    (q_mo,) = store.quarantine_inbound([mo.id], stage="decide", reason="boom", now=NOW)
    (q_reply,) = store.quarantine_outbound(
        [reply_id], stage="submit", reason="not encodable", now=NOW
    )
    assert (q_reply.kind, q_reply.id, q_reply.reason) == ("reply", reply_id, "not encodable")
    assert (q_mo.kind, q_mo.stage, q_mo.reason, q_mo.address) == (
        "mo",
        "decide",
        "boom",
        "0327000686",
    )
    assert [(q.kind, q.id) for q in store.quarantined()] == [
        ("mo", mo.id),
        ("reply", reply_id),
    ]
    # Nothing takes them up meanwhile.
    assert store.claim_inbound(limit=10) == []
    assert store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60) == []
    # Retry: back in the stream.
    assert store.retry_quarantined("mo", mo.id, now=NOW)
    assert [m.id for m in store.claim_inbound(limit=10)] == [mo.id]
    assert store.retry_quarantined("reply", reply_id, now=NOW)
    (again,) = store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60)
    assert (again.id, again.attempts) == (reply_id, 0)
    assert not store.retry_quarantined("mo", mo.id, now=NOW)  # no longer in quarantine
    # Drop: gone for good, the password masked, the MT charge void.
    store.quarantine_outbound([reply_id], stage="submit", reason="again", now=NOW)
    assert store.drop_quarantined("reply", reply_id, now=NOW)
    body, state = rows(store, "SELECT body, state FROM outbound_messages")[0]
    assert state == OutboundState.FAILED.value
    assert PASSWORD not in str(body)
    assert scalar(store, "SELECT state FROM charges WHERE mode = 'mt'") == "void"
    store.quarantine_inbound([mo.id], stage="decide", reason="again", now=NOW)
    assert store.drop_quarantined("mo", mo.id, now=NOW)
    assert (
        scalar(store, "SELECT state FROM inbound_messages WHERE id = :i", i=mo.id)
        == InboundState.DROPPED.value
    )
    assert store.quarantined() == []


@pytest.mark.parametrize("charging", [ChargingMode.MO, ChargingMode.MT])
def test_a_reply_not_accepted_in_time_expires_masked(
    store: SqlStore, charging: ChargingMode
) -> None:
    reply_id = _queued_reply(store, charging=charging)
    store.release_own()
    created = scalar(store, "SELECT count(*) FROM outbound_messages WHERE state = 'queued'")
    assert created == 1
    # Not yet.
    assert store.expire_replies(now=NOW, max_age_s=900, max_attempts=10) == []
    later = T0 + timedelta(seconds=901)
    (expired,) = store.expire_replies(now=later, max_age_s=900, max_attempts=10)
    assert expired.outbound_id == reply_id
    body, state = rows(store, "SELECT body, state FROM outbound_messages")[0]
    assert state == OutboundState.EXPIRED.value
    assert PASSWORD not in str(body)
    assert "Mat khau: ******" in str(body)
    charge = scalar(store, "SELECT state FROM charges")
    assert charge == ("void" if charging is ChargingMode.MT else "final")
    # Never claimed again.
    assert store.claim_outbound(carrier="viettel", now=later, limit=10, lease_s=60) == []


def test_a_reply_submitted_max_attempts_times_expires(store: SqlStore) -> None:
    reply_id = _queued_reply(store)
    for _ in range(3):
        store.mark_retry(reply_id, status=0x58, next_attempt_at=NOW)
    assert store.expire_replies(now=NOW, max_age_s=900, max_attempts=4) == []
    store.mark_retry(reply_id, status=0x58, next_attempt_at=NOW)
    (expired,) = store.expire_replies(now=NOW, max_age_s=900, max_attempts=4)
    assert (expired.outbound_id, expired.attempts) == (reply_id, 4)


def test_a_reply_under_a_live_lease_waits_for_its_verdict(store: SqlStore) -> None:
    reply_id = _queued_reply(store)
    (leased,) = store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60)
    assert leased.id == reply_id
    late = NOW + timedelta(seconds=30)
    assert store.expire_replies(now=late, max_age_s=1, max_attempts=10) == []


def test_data_the_database_refuses_is_rejected_not_unavailable(store: SqlStore) -> None:
    bad = NewInbound(
        carrier="viettel",
        source_addr="0327000686\udce9",  # a lone surrogate: no encoding holds it
        source_addr_ton=0,
        source_addr_npi=1,
        msisdn="84327000686",
        destination_addr="8079",
        text="BH MK 0123456789",
        received_at=T0,
    )
    with pytest.raises(StoreRejected):
        store.store_inbound([bad], duplicate_window_s=0)
    assert scalar(store, "SELECT count(*) FROM inbound_messages") == 0


def test_the_mismatch_reply_of_a_quarantined_mo_is_never_written(store: SqlStore) -> None:
    mo = add_mo(store)
    store.quarantine_inbound([mo.id], stage="decide", reason="boom", now=NOW)
    assert store.commit_decisions([decision(mo, outcome=Outcome.MISMATCH, code=None)]) == [None]
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == 0


def test_recovery_reads_a_backlog_batch_after_batch_from_an_id(
    store_factory: Callable[[], SqlStore],
) -> None:
    """A pass of the daemon's recovery goes on after the last batch's highest
    id: the oldest rows (in progress, being hashed) do not hide the rows
    behind them."""
    store = store_factory()
    ids = [
        mo.id
        for mo in store.store_inbound(
            [new_mo(msisdn=f"8432700{n:04d}", source_addr=f"032700{n:04d}") for n in range(7)],
            duplicate_window_s=0,
        )
    ]
    first, _ = store.recover_inbound(limit=3, now=NOW, stale_s=60)
    second, _ = store.recover_inbound(limit=3, now=NOW, stale_s=60, after_id=first[-1].id)
    third, _ = store.recover_inbound(limit=3, now=NOW, stale_s=60, after_id=second[-1].id)
    assert [[m.id for m in batch] for batch in (first, second, third)] == [
        ids[:3],
        ids[3:6],
        ids[6:],
    ]
    # From the start again: the same oldest rows, still RECEIVED.
    again, _ = store.recover_inbound(limit=3, now=NOW, stale_s=60)
    assert [m.id for m in again] == ids[:3]


def test_periodic_claims_that_find_nothing_wait_for_no_writer(tmp_path: Path) -> None:
    """The outbox's claim (twice a second per carrier), the recovery and the
    expiry look before they take the write lock: one that finds nothing
    leaves the writers (the intake's commits) alone, and so is not held up
    by one either (SQLite: one writer at a time)."""
    store = open_store(f"sqlite:///{tmp_path / 'smscd.db'}", create_if_missing=True)
    try:
        _claims_find_nothing_without_the_lock(store)
    finally:
        store.close()


def _claims_find_nothing_without_the_lock(store: SqlStore) -> None:
    add_account(store)
    # Decided, its reply born leased to its submitter: nothing to claim yet.
    (leased,) = store.commit_decisions([decision(add_mo(store))], lease_s=30)
    writer = sqlite3.connect(str(store.engine.url.database), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        started = time.monotonic()
        assert store.lease_outbound(carrier="viettel", now=NOW, limit=10, lease_s=30) == ([], [])
        assert store.recover_inbound(limit=10, now=NOW, stale_s=60) == ([], [])
        assert store.expire_replies(now=NOW, max_age_s=3600, max_attempts=10) == []
        # Not one busy_timeout (5 s) waited for the lock.
        assert time.monotonic() - started < 1.0
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    # Once the lease has run out, the claim takes the lock and the reply.
    later = NOW + timedelta(seconds=60)
    taken, _ = store.lease_outbound(carrier="viettel", now=later, limit=10, lease_s=30)
    assert [m.id for m in taken] == [leased]
