"""The store's queries behind the status page: the outbox's depth and oldest
reply, and resets and charges per Vietnam day and carrier."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from smscd.reset import ChargingMode, Outcome
from smscd.store.sql import ActivityDay
from tests.store.helpers import T0, add_account, add_mo, decision, new_mo

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore


def test_daily_activity_counts_resets_and_charges_not_voided_per_vietnam_day(
    store: SqlStore,
) -> None:
    add_account(store)
    nov20_1730 = datetime(2024, 11, 20, 17, 30, tzinfo=T0.tzinfo)  # 2024-11-21 00:30 local
    # viettel, 2024-11-21: a reset charged at decision (MO charging)...
    a = add_mo(store, at=nov20_1730, text="a")
    store.commit_decision(decision(a))
    # ...and its redelivery, counted nowhere.
    store.store_inbound(
        [new_mo(at=nov20_1730 + timedelta(seconds=30), text="a")], duplicate_window_s=120
    )
    # viettel, 2024-11-20 23:30 local: a mismatch whose MT charge is pending.
    b = add_mo(store, at=nov20_1730 - timedelta(hours=1), text="b")
    store.commit_decision(decision(b, outcome=Outcome.MISMATCH, charging=ChargingMode.MT))
    # mobifone, 2024-11-21: an MT charge voided by a submit refused for good.
    c = add_mo(store, at=T0, text="c", carrier="mobifone")
    cid = store.commit_decision(decision(c, outcome=Outcome.MISMATCH, charging=ChargingMode.MT))
    store.mark_failed(cid, status=0x45, now=T0)
    # viettel, 2024-11-21: not decided yet.
    add_mo(store, at=T0, text="e")
    # mobifone, 2024-11-22: a reset.
    f = add_mo(store, at=T0 + timedelta(days=1), text="f", carrier="mobifone")
    store.commit_decision(decision(f))

    assert store.daily_activity(start=date(2024, 11, 20)) == [
        ActivityDay(day=date(2024, 11, 20), carrier="viettel", resets=0, charges_vnd=1000),
        ActivityDay(day=date(2024, 11, 21), carrier="mobifone", resets=0, charges_vnd=0),
        ActivityDay(day=date(2024, 11, 21), carrier="viettel", resets=1, charges_vnd=1000),
        ActivityDay(day=date(2024, 11, 22), carrier="mobifone", resets=1, charges_vnd=1000),
    ]
    # From the Vietnam day on: 23:30 local on the 20th is left out.
    assert [(r.day, r.carrier) for r in store.daily_activity(start=date(2024, 11, 21))] == [
        (date(2024, 11, 21), "mobifone"),
        (date(2024, 11, 21), "viettel"),
        (date(2024, 11, 22), "mobifone"),
    ]


def test_outbox_summary_counts_queued_replies_and_dates_the_oldest(store: SqlStore) -> None:
    assert store.outbox_summary(["viettel", "mobifone"]) == ({}, None)
    assert store.outbox_summary([]) == ({}, None)
    first = add_mo(store, at=T0, text="first")
    store.commit_decision(decision(first, outcome=Outcome.MISMATCH))
    later = add_mo(store, at=T0 + timedelta(minutes=3), text="later", carrier="mobifone")
    store.commit_decision(decision(later, outcome=Outcome.MISMATCH))
    third = add_mo(store, at=T0 + timedelta(minutes=5), text="third")
    accepted = store.commit_decision(decision(third, outcome=Outcome.MISMATCH))
    store.mark_accepted(accepted, message_id="x", id_keys=frozenset({"x"}), now=T0)

    depth, oldest = store.outbox_summary(["viettel", "mobifone", "gmobile"])
    assert depth == {"viettel": 1, "mobifone": 1}
    assert oldest == first.received_at + timedelta(milliseconds=50)  # decided, queued
    # Only the carriers asked for (the daemon's own).
    depth, oldest = store.outbox_summary(["mobifone"])
    assert depth == {"mobifone": 1}
    assert oldest == later.received_at + timedelta(milliseconds=50)
