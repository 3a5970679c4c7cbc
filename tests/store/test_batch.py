"""The batch methods behind the daemon's group commits: many rows, one
transaction, the same results as the one-row methods one after the other."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import attrs
import pytest

from smscd.reset import ChargingMode, InboundState, Outcome
from smscd.store.types import NewReceipt, ReceiptMatch, StoreError
from tests.store.helpers import (
    CODE,
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
    from smscd.reset import InboundMessage
    from smscd.store.sql import SqlStore

NOW = T0 + timedelta(seconds=1)
OTHER = "0987654321"


def _keys(n: int) -> frozenset[str]:
    return frozenset({f"hex:{n:x}", f"dec:{n}"})


def _receipt(n: int, stat: str = "DELIVRD", *, final: bool = True) -> NewReceipt:
    return NewReceipt(
        carrier="viettel",
        message_id=str(n),
        id_keys=_keys(n),
        stat=stat,
        err="000",
        final=final,
        received_at=NOW + timedelta(seconds=n % 7),
    )


def _mos(store: SqlStore, n: int) -> list[InboundMessage]:
    return [add_mo(store, text=f"m{i}") for i in range(n)]


def test_commit_decisions_writes_every_decision_in_order(store: SqlStore) -> None:
    add_account(store)
    reset_mo, mismatch_mo, help_mo = _mos(store, 3)
    ids = store.commit_decisions(
        [
            decision(help_mo, outcome=Outcome.BAD_SYNTAX, code=None, text="help"),
            decision(reset_mo),
            decision(mismatch_mo, outcome=Outcome.MISMATCH, charging=ChargingMode.MT),
        ]
    )
    assert all(isinstance(i, int) for i in ids)
    assert rows(
        store,
        "SELECT o.id, o.inbound_id, o.body, o.state FROM outbound_messages o ORDER BY o.id",
    ) == [
        (ids[0], help_mo.id, "help", "queued"),
        (
            ids[1],
            reset_mo.id,
            f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: {PASSWORD}",
            "queued",
        ),
        (
            ids[2],
            mismatch_mo.id,
            "So dien thoai va ma so BHXH khong khop hoac chua dang ky giao dich dien tu voi co"
            " quan BHXH",
            "queued",
        ),
    ]
    assert rows(store, "SELECT state, outcome FROM inbound_messages ORDER BY id") == [
        ("decided", "reset_ok"),
        ("decided", "mismatch"),
        ("decided", "bad_syntax"),
    ]
    assert rows(store, "SELECT inbound_id, mode, state FROM charges ORDER BY inbound_id") == [
        (reset_mo.id, "mo", "final"),
        (mismatch_mo.id, "mt", "pending"),
        (help_mo.id, "mo", "final"),
    ]
    assert rows(store, "SELECT must_change FROM accounts") == [(True,)]
    assert str(scalar(store, "SELECT password_hash FROM accounts")).startswith("$argon2id$")


def test_commit_decisions_skips_what_is_already_decided(store: SqlStore) -> None:
    first, second = _mos(store, 2)
    store.commit_decision(decision(first, outcome=Outcome.MISMATCH))
    ids = store.commit_decisions(
        [
            decision(first, outcome=Outcome.BAD_SYNTAX, code=None),  # a replay
            decision(second, outcome=Outcome.MISMATCH),
            decision(second, outcome=Outcome.BAD_SYNTAX, code=None),  # twice in one batch
            decision(attrs.evolve(second, id=second.id + 99), outcome=Outcome.MISMATCH),
        ]
    )
    assert ids[0] is None and isinstance(ids[1], int) and ids[2:] == [None, None]
    assert rows(store, "SELECT outcome FROM inbound_messages ORDER BY id") == [
        ("mismatch",),
        ("mismatch",),
    ]
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == 2
    assert scalar(store, "SELECT count(*) FROM charges") == 2
    assert store.commit_decisions([]) == []


def test_replies_born_leased_are_claimed_only_after_the_lease(store: SqlStore) -> None:
    (mo,) = _mos(store, 1)
    d = decision(mo, outcome=Outcome.MISMATCH)
    (oid,) = store.commit_decisions([d], lease_s=60)
    assert oid is not None
    # The daemon that decided it submits it itself: nobody else may claim it...
    assert store.claim_outbound(carrier="viettel", now=d.decided_at, limit=5, lease_s=60) == []
    # ...unless that daemon dies and the lease runs out.
    later = d.decided_at + timedelta(seconds=61)
    (row,) = store.claim_outbound(carrier="viettel", now=later, limit=5, lease_s=60)
    assert row.id == oid


def test_a_decision_that_cannot_apply_rolls_back_the_whole_batch(store: SqlStore) -> None:
    ok_mo, orphan_mo = _mos(store, 2)
    with pytest.raises(StoreError, match=f"no account {OTHER}"):
        store.commit_decisions(
            [
                decision(ok_mo, outcome=Outcome.MISMATCH),
                decision(orphan_mo, code=OTHER),  # RESET_OK for a code nobody has
            ]
        )
    assert rows(store, "SELECT state FROM inbound_messages") == [("received",), ("received",)]
    assert scalar(store, "SELECT count(*) FROM outbound_messages") == 0
    assert scalar(store, "SELECT count(*) FROM charges") == 0


def test_mark_accepted_many_masks_records_ids_and_applies_early_receipts(
    store: SqlStore,
) -> None:
    add_account(store)
    a, b, c = _mos(store, 3)
    oids = store.commit_decisions(
        [decision(a, charging=ChargingMode.MT), decision(b, charging=ChargingMode.MT)]
    )
    oid_a, oid_b = (i for i in oids if i is not None)
    # b's receipt came before its submit_sm_resp was recorded.
    assert store.record_receipts([_receipt(2, "UNDELIV")]) == [None]
    (early,) = store.mark_accepted_many([(oid_a, "1", _keys(1)), (oid_b, "2", _keys(2))], now=NOW)
    # It names the request the early receipt answers (for the daemon's log).
    assert (early.stat, early.carrier) == ("UNDELIV", "viettel")
    assert early.match == ReceiptMatch(outbound_id=oid_b, mo_id=b.id, destination_addr="0327000686")
    assert rows(store, "SELECT id, state, attempts, body FROM outbound_messages ORDER BY id") == [
        (oid_a, "accepted", 1, f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: ******"),
        (
            oid_b,
            "undeliverable",
            1,
            f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: ******",
        ),
    ]
    assert rows(store, "SELECT inbound_id, state FROM charges ORDER BY inbound_id") == [
        (a.id, "pending"),
        (b.id, "void"),
    ]
    assert scalar(store, "SELECT count(*) FROM outbound_message_ids") == 4
    assert store.record_receipts([_receipt(1)]) == [oid_a]
    # An unknown id refuses the whole batch.
    oid_c = store.commit_decision(decision(c, outcome=Outcome.MISMATCH))
    with pytest.raises(StoreError, match="no outbound message"):
        store.mark_accepted_many([(oid_c, "3", _keys(3)), (oid_c + 99, "4", _keys(4))], now=NOW)
    assert scalar(store, "SELECT state FROM outbound_messages WHERE id = :i", i=oid_c) == "queued"
    store.mark_accepted_many([], now=NOW)


def test_record_receipts_match_settle_and_keep_the_unmatched(store: SqlStore) -> None:
    add_account(store)
    mos = _mos(store, 3)
    oids = [
        store.commit_decision(decision(mo, charging=ChargingMode.MT, text=f"r{i}"))
        for i, mo in enumerate(mos)
    ]
    store.mark_accepted_many([(oid, str(n), _keys(n)) for n, oid in enumerate(oids)], now=NOW)
    matched = store.record_receipts(
        [
            _receipt(0, "ENROUTE", final=False),  # not final: nothing changes
            _receipt(1, "UNDELIV"),  # a final failure, then a late DELIVRD:
            _receipt(1, "DELIVRD"),  # the first final receipt wins
            _receipt(2, "DELIVRD"),
            _receipt(77, "DELIVRD"),  # for a reply not accepted yet
        ]
    )
    assert matched == [oids[0], oids[1], oids[1], oids[2], None]
    assert rows(store, "SELECT state FROM outbound_messages ORDER BY id") == [
        ("accepted",),
        ("undeliverable",),
        ("delivered",),
    ]
    assert rows(store, "SELECT state FROM charges ORDER BY inbound_id") == [
        ("pending",),
        ("void",),
        ("final",),
    ]
    assert scalar(store, "SELECT count(*) FROM receipts") == 5
    assert scalar(store, "SELECT count(*) FROM receipts WHERE outbound_id IS NULL") == 1
    assert store.record_receipts([]) == []


def test_store_inbound_keeps_arrival_order_with_redeliveries_in_the_batch(
    store: SqlStore,
) -> None:
    batch = [
        new_mo(at=T0),
        new_mo(at=T0 + timedelta(seconds=1)),  # a redelivery of the first
        new_mo(at=T0 + timedelta(seconds=2), text="xin chao"),
        new_mo(at=T0 + timedelta(seconds=3)),  # and another
    ]
    stored = store.store_inbound(batch, duplicate_window_s=120)
    assert [m.state for m in stored] == [
        InboundState.RECEIVED,
        InboundState.DUPLICATE,
        InboundState.RECEIVED,
        InboundState.DUPLICATE,
    ]
    ids = [m.id for m in stored]
    assert ids == sorted(ids)
    assert rows(store, "SELECT id, duplicate_of, state FROM inbound_messages ORDER BY id") == [
        (ids[0], None, "received"),
        (ids[1], ids[0], "duplicate"),
        (ids[2], None, "received"),
        (ids[3], ids[0], "duplicate"),
    ]
    # Without a window nothing is a redelivery.
    again = store.store_inbound(batch[:2], duplicate_window_s=0)
    assert [m.state for m in again] == [InboundState.RECEIVED, InboundState.RECEIVED]


def test_commit_inbound_writes_acceptances_before_its_receipts(store: SqlStore) -> None:
    """The daemon's intake transaction carries the SMSC's acceptances: a
    receipt in the same batch finds its reply accepted (and settles its
    charge); an acceptance of a reply that does not exist is left out."""
    add_account(store)
    (mo,) = _mos(store, 1)
    oid = store.commit_decision(decision(mo, charging=ChargingMode.MT))
    # Another reply's receipt came before its acceptance.
    (other,) = _mos(store, 1)
    other_oid = store.commit_decision(decision(other, outcome=Outcome.MISMATCH))
    assert store.record_receipts([_receipt(7)]) == [None]
    committed = store.commit_inbound(
        [],
        [_receipt(5)],
        duplicate_window_s=0,
        accepted=[(oid, "5", _keys(5)), (oid + 99, "6", _keys(6)), (other_oid, "7", _keys(7))],
        now=NOW,
    )
    (early,) = committed.early
    assert early.match.outbound_id == other_oid and early.match.mo_id == other.id
    (match,) = committed.receipts
    assert match is not None and (match.outbound_id, match.mo_id) == (oid, mo.id)
    assert rows(
        store, "SELECT state, attempts, body FROM outbound_messages WHERE id = :i", i=oid
    ) == [("delivered", 1, f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: ******")]
    assert rows(store, "SELECT state FROM charges WHERE inbound_id = :i", i=mo.id) == [("final",)]
    # Receipt 5 matched at once: no keys kept for it (only the early one's).
    assert scalar(store, "SELECT count(*) FROM receipt_id_keys") == 2
