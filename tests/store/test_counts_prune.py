from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from smscd.reset import ChargingMode, Outcome, ResetCounts
from smscd.store.types import NewReceipt
from tests.store.helpers import (
    CODE,
    PHONE,
    T0,
    add_account,
    add_mo,
    decision,
    new_mo,
    rows,
    scalar,
)

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore

DAY = timedelta(days=1)


def test_reset_counts_by_phone_and_code_per_window(store: SqlStore) -> None:
    add_account(store)
    add_account(store, code="1111111111", phone="84912345678")
    month_start = T0 - 10 * DAY
    day_start = T0 - timedelta(hours=2)

    def reset(at_offset: timedelta, msisdn: str = PHONE) -> None:
        mo = add_mo(store, at=T0 + at_offset, text=f"t{at_offset}", msisdn=msisdn)
        store.commit_decision(decision(mo, code=CODE))

    reset(-11 * DAY)  # before the month
    reset(-5 * DAY)  # this month
    reset(-timedelta(hours=1))  # today
    reset(-timedelta(minutes=1), msisdn="84912345678")  # today, other phone, same code
    other = add_mo(store, at=T0, text="other code")
    store.commit_decision(decision(other, code="1111111111"))  # same phone, other code
    mismatch = add_mo(store, at=T0, text="mm")
    store.commit_decision(decision(mismatch, outcome=Outcome.MISMATCH))  # not a reset
    counts = store.reset_counts(
        msisdn=PHONE, bhxh_code=CODE, day_start=day_start, month_start=month_start
    )
    assert counts == ResetCounts(phone_day=2, phone_month=3, code_day=2, code_month=3)
    assert store.reset_counts(
        msisdn="84999999999", bhxh_code="2222222222", day_start=day_start, month_start=month_start
    ) == ResetCounts(phone_day=0, phone_month=0, code_day=0, code_month=0)


def test_prune_keeps_queued_replies_and_pending_charges(store: SqlStore) -> None:
    add_account(store)
    old = T0 - 40 * DAY
    # 1: old, accepted and delivered, MT charge final -> pruned with its receipt
    done = add_mo(store, at=old, text="done")
    oid = store.commit_decision(decision(done, outcome=Outcome.MISMATCH, charging=ChargingMode.MT))
    store.mark_accepted(oid, message_id="a1", id_keys=frozenset({"hex:a1"}), now=old)
    store.record_receipt(
        NewReceipt(
            carrier="viettel",
            message_id="a1",
            id_keys=frozenset({"hex:a1"}),
            stat="DELIVRD",
            err="000",
            final=True,
            received_at=old,
        )
    )
    # 2: old duplicate of 1 -> pruned (no reply, no charge)
    store.store_inbound([new_mo(at=old, text="done")], duplicate_window_s=60)
    # 3: old, reply still queued -> kept
    queued = add_mo(store, at=old, text="queued")
    store.commit_decision(decision(queued, outcome=Outcome.MISMATCH))
    # 4: old, accepted, MT charge pending -> kept
    pending = add_mo(store, at=old, text="pending")
    pid = store.commit_decision(
        decision(pending, outcome=Outcome.MISMATCH, charging=ChargingMode.MT)
    )
    store.mark_accepted(pid, message_id="b2", id_keys=frozenset({"hex:b2"}), now=old)
    # 5: old, never decided -> kept
    add_mo(store, at=old, text="received")
    # 6: recent, finished -> kept
    recent = add_mo(store, at=T0, text="recent")
    rid = store.commit_decision(decision(recent, outcome=Outcome.MISMATCH))
    store.mark_failed(rid, status=0x45, now=T0)
    # 7: old unmatched receipt -> pruned
    store.record_receipt(
        NewReceipt(
            carrier="viettel",
            message_id="zz",
            id_keys=frozenset({"hex:zz"}),
            stat="DELIVRD",
            err="000",
            final=True,
            received_at=old,
        )
    )
    counts = store.prune(T0 - 35 * DAY)
    assert (counts.inbound, counts.outbound, counts.receipts, counts.charges) == (2, 1, 2, 1)
    assert rows(store, "SELECT text FROM inbound_messages ORDER BY id") == [
        ("queued",),
        ("pending",),
        ("received",),
        ("recent",),
    ]
    assert scalar(store, "SELECT count(*) FROM accounts") == 1
    assert scalar(store, "SELECT count(*) FROM receipt_id_keys") == 0
    assert scalar(store, "SELECT count(*) FROM outbound_message_ids") == 1  # b2's
    assert store.prune(T0 - 35 * DAY).inbound == 0
