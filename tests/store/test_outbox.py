from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from smscd.reset import ChargingMode, Outcome
from smscd.store.sql import mask_body
from smscd.store.types import NewReceipt, OutboundState, StoreError
from tests.store.helpers import (
    CODE,
    PASSWORD,
    T0,
    add_account,
    add_mo,
    decision,
    rows,
    scalar,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from smscd.store.sql import SqlStore

NOW = T0 + timedelta(seconds=1)
HEX_ID = "1d305b4c"
DEC_ID = "0489708364"
#: What smscd.smpp.message_id_keys makes of both forms of the same id.
KEYS = frozenset({"hex:1d305b4c", "dec:489708364"})


def _queued(store: SqlStore, *, charging: ChargingMode = ChargingMode.MO, text: str = "x") -> int:
    add_account(store)
    mo = add_mo(store, text=text)
    return store.commit_decision(decision(mo, charging=charging))


def _receipt(stat: str = "DELIVRD", *, final: bool = True, at: datetime = NOW) -> NewReceipt:
    return NewReceipt(
        carrier="viettel",
        message_id=DEC_ID,
        id_keys=KEYS,
        stat=stat,
        err="000",
        final=final,
        received_at=at,
    )


def test_mask_body() -> None:
    assert mask_body(f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: {PASSWORD}") == (
        f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: ******"
    )
    assert mask_body("ma 123456 va 1234567 va 12345") == "ma ****** va 1234567 va 12345"
    assert mask_body("goi 1900.9068") == "goi 1900.9068"


def test_claim_leases_rows(store: SqlStore) -> None:
    oid = _queued(store)
    (first,) = store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=30)
    assert first.id == oid
    assert first.body.endswith(PASSWORD)  # plaintext while queued
    assert store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=30) == []
    assert store.claim_outbound(carrier="mobifone", now=NOW, limit=10, lease_s=30) == []
    later = NOW + timedelta(seconds=31)  # the lease ran out (the sender died)
    (again,) = store.claim_outbound(carrier="viettel", now=later, limit=10, lease_s=30)
    assert again.id == oid
    assert store.outbox_depth() == {"viettel": 1}


def test_release_leases_frees_a_dead_senders_rows(store: SqlStore) -> None:
    oid = _queued(store)
    store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60)
    assert store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60) == []
    assert store.release_leases() == 1
    (again,) = store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=60)
    assert again.id == oid
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW)
    assert store.release_leases() == 0  # only queued replies are touched


def test_retry_then_accept_masks_the_body(store: SqlStore) -> None:
    oid = _queued(store)
    store.claim_outbound(carrier="viettel", now=NOW, limit=10, lease_s=30)
    store.mark_retry(oid, status=0x58, next_attempt_at=NOW + timedelta(seconds=10))
    assert (
        store.claim_outbound(
            carrier="viettel", now=NOW + timedelta(seconds=5), limit=10, lease_s=30
        )
        == []
    )
    (m,) = store.claim_outbound(
        carrier="viettel", now=NOW + timedelta(seconds=10), limit=10, lease_s=30
    )
    assert (m.attempts, m.last_status, m.state) == (1, 0x58, OutboundState.QUEUED)
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW + timedelta(seconds=11))
    assert rows(store, "SELECT state, attempts, smsc_message_id, body FROM outbound_messages") == [
        (
            "accepted",
            2,
            HEX_ID,
            f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: ******",
        )
    ]
    assert store.outbox_depth() == {}
    assert (
        store.claim_outbound(carrier="viettel", now=NOW + timedelta(hours=1), limit=10, lease_s=30)
        == []
    )
    # No trace of the password anywhere in the outbox.
    for row in rows(store, "SELECT * FROM outbound_messages"):
        assert not any(PASSWORD in str(v) for v in row)


def test_receipt_after_acceptance_matches_by_any_key(store: SqlStore) -> None:
    oid = _queued(store, charging=ChargingMode.MT)
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW)
    assert store.record_receipt(_receipt("ENROUTE", final=False)) == oid
    assert rows(store, "SELECT state FROM outbound_messages") == [("accepted",)]
    assert rows(store, "SELECT state FROM charges") == [("pending",)]
    assert store.record_receipt(_receipt("DELIVRD")) == oid
    assert rows(store, "SELECT state FROM outbound_messages") == [("delivered",)]
    assert rows(store, "SELECT state FROM charges") == [("final",)]
    assert rows(store, "SELECT message_id, outbound_id FROM receipts ORDER BY id") == [
        (DEC_ID, oid),
        (DEC_ID, oid),
    ]


def test_receipt_before_acceptance_is_applied_by_mark_accepted(store: SqlStore) -> None:
    oid = _queued(store, charging=ChargingMode.MT)
    assert store.record_receipt(_receipt("UNDELIV")) is None
    assert rows(store, "SELECT outbound_id FROM receipts") == [(None,)]
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=frozenset({"hex:1d305b4c"}), now=NOW)
    assert rows(store, "SELECT outbound_id FROM receipts") == [(oid,)]
    assert rows(store, "SELECT state FROM outbound_messages") == [("undeliverable",)]
    assert rows(store, "SELECT state FROM charges") == [("void",)]


def test_receipts_leave_mo_charges_alone(store: SqlStore) -> None:
    oid = _queued(store, charging=ChargingMode.MO)
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW)
    store.record_receipt(_receipt("EXPIRED"))
    assert rows(store, "SELECT state FROM outbound_messages") == [("undeliverable",)]
    assert rows(store, "SELECT state, amount_vnd FROM charges") == [("final", 1000)]


def test_unknown_receipt_is_kept_unmatched(store: SqlStore) -> None:
    other = NewReceipt(
        carrier="vinaphone",
        message_id="ff",
        id_keys=frozenset({"hex:ff"}),
        stat="DELIVRD",
        err="000",
        final=True,
        received_at=NOW,
    )
    assert store.record_receipt(other) is None
    assert rows(store, "SELECT carrier, message_id, stat, outbound_id FROM receipts") == [
        ("vinaphone", "ff", "DELIVRD", None)
    ]


def test_receipt_of_another_carrier_does_not_match(store: SqlStore) -> None:
    oid = _queued(store)
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW)
    foreign = NewReceipt(
        carrier="mobifone",
        message_id=DEC_ID,
        id_keys=KEYS,
        stat="DELIVRD",
        err="000",
        final=True,
        received_at=NOW,
    )
    assert store.record_receipt(foreign) is None
    assert rows(store, "SELECT state FROM outbound_messages") == [("accepted",)]


def test_failure_voids_an_mt_charge_and_masks(store: SqlStore) -> None:
    oid = _queued(store, charging=ChargingMode.MT)
    store.mark_failed(oid, status=0x45, now=NOW)
    assert rows(store, "SELECT state, last_status, attempts FROM outbound_messages") == [
        ("failed", 0x45, 1)
    ]
    assert rows(store, "SELECT state FROM charges") == [("void",)]
    assert (
        scalar(
            store, "SELECT count(*) FROM outbound_messages WHERE body LIKE :p", p=f"%{PASSWORD}%"
        )
        == 0
    )
    assert (
        store.claim_outbound(carrier="viettel", now=NOW + timedelta(hours=1), limit=10, lease_s=1)
        == []
    )


def test_one_charge_per_mo_whatever_the_retries(store: SqlStore) -> None:
    oid = _queued(store, charging=ChargingMode.MT)
    for i in range(3):
        store.mark_retry(oid, status=0x58, next_attempt_at=NOW + timedelta(seconds=i))
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW)
    store.mark_accepted(oid, message_id=HEX_ID, id_keys=KEYS, now=NOW)  # a repeated resp
    store.record_receipt(_receipt("DELIVRD"))
    store.record_receipt(_receipt("DELIVRD"))  # a repeated receipt
    assert rows(store, "SELECT state, attempts FROM outbound_messages") == [("delivered", 4)]
    assert rows(store, "SELECT state, amount_vnd FROM charges") == [("final", 1000)]


def test_mark_accepted_unknown_id(store: SqlStore) -> None:
    with pytest.raises(StoreError):
        store.mark_accepted(12345, message_id="1", id_keys=frozenset({"1"}), now=NOW)


def test_concurrent_claims_never_share_a_row(
    store: SqlStore, store_factory: Callable[[], SqlStore]
) -> None:
    add_account(store)
    total = 40
    for i in range(total):
        mo = add_mo(store, text=f"m{i}")
        store.commit_decision(decision(mo, outcome=Outcome.MISMATCH))
    claimers = [store_factory(), store_factory()]
    claimed: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def work(k: int) -> None:
        barrier.wait(timeout=10)
        while True:
            got = claimers[k].claim_outbound(
                carrier="viettel", now=NOW + timedelta(seconds=1), limit=3, lease_s=300
            )
            if not got:
                return
            claimed[k].extend(m.id for m in got)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == total
