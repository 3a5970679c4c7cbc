from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from smscd.reset import ChargingMode, Decision, InboundState, Outcome
from smscd.store.types import NewReceipt
from tests.store.helpers import T0, add_mo, decision, new_mo, rows

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore

WINDOW = 120.0


def test_duplicates_inside_the_window_outside_and_in_one_batch(store: SqlStore) -> None:
    first = store.store_inbound([new_mo(at=T0)], duplicate_window_s=WINDOW)
    batch = [
        new_mo(at=T0 + timedelta(seconds=30)),  # redelivery of the first
        new_mo(at=T0 + timedelta(seconds=31), text="BH MK 9999999999"),  # other text
        new_mo(at=T0 + timedelta(seconds=32), carrier="mobifone"),  # other carrier
        new_mo(at=T0 + timedelta(seconds=33), msisdn="84912345678"),  # other sender
        new_mo(at=T0 + timedelta(seconds=40), text="BH MK 9999999999"),  # same batch
    ]
    second = store.store_inbound(batch, duplicate_window_s=WINDOW)
    late = store.store_inbound([new_mo(at=T0 + timedelta(seconds=400))], duplicate_window_s=WINDOW)
    states = [m.state for m in [*first, *second, *late]]
    assert states == [
        InboundState.RECEIVED,
        InboundState.DUPLICATE,
        InboundState.RECEIVED,
        InboundState.RECEIVED,
        InboundState.RECEIVED,
        InboundState.DUPLICATE,
        InboundState.RECEIVED,
    ]
    ids = [m.id for m in [*first, *second, *late]]
    assert ids == sorted(ids)
    assert rows(store, "SELECT id, duplicate_of FROM inbound_messages ORDER BY id") == [
        (ids[0], None),
        (ids[1], ids[0]),
        (ids[2], None),
        (ids[3], None),
        (ids[4], None),
        (ids[5], ids[2]),
        (ids[6], None),
    ]
    assert second[0].received_at == T0 + timedelta(seconds=30)


def test_a_duplicate_of_a_duplicate_points_at_the_original(store: SqlStore) -> None:
    batch = [new_mo(at=T0 + timedelta(seconds=s)) for s in (0, 100, 200)]
    stored = store.store_inbound(batch, duplicate_window_s=WINDOW)
    assert [m.state for m in stored] == [
        InboundState.RECEIVED,
        InboundState.DUPLICATE,
        InboundState.DUPLICATE,  # 100 s after the previous redelivery
    ]
    assert rows(store, "SELECT duplicate_of FROM inbound_messages ORDER BY id") == [
        (None,),
        (stored[0].id,),
        (stored[0].id,),
    ]


def test_window_zero_disables_duplicate_detection(store: SqlStore) -> None:
    stored = store.store_inbound([new_mo(), new_mo()], duplicate_window_s=0)
    assert [m.state for m in stored] == [InboundState.RECEIVED, InboundState.RECEIVED]


def test_claim_inbound_gives_received_oldest_first(store: SqlStore) -> None:
    a = add_mo(store, text="a")
    b = add_mo(store, text="b")
    c = add_mo(store, text="c")
    store.store_inbound([new_mo(text="c")], duplicate_window_s=WINDOW)  # duplicate of c
    store.commit_decision(decision(a, outcome=Outcome.BAD_SYNTAX, code=None))
    assert [m.id for m in store.claim_inbound(limit=10)] == [b.id, c.id]
    (only,) = store.claim_inbound(limit=1)
    assert only == b
    assert store.store_inbound([], duplicate_window_s=WINDOW) == []


def _mismatch(at: datetime) -> Decision:
    """A mismatch decided before its MO has an id (the store sets it)."""
    return Decision(
        inbound_id=0,
        outcome=Outcome.MISMATCH,
        bhxh_code=None,
        reply_text="mismatch",
        charge_vnd=1000,
        charging=ChargingMode.MO,
        decided_at=at,
    )


def test_commit_inbound_commits_mos_decisions_made_before_and_receipts(
    store: SqlStore,
) -> None:
    (original,) = store.store_inbound([new_mo(at=T0)], duplicate_window_s=WINDOW)
    batch = [
        new_mo(at=T0 + timedelta(seconds=1), msisdn="84911111111"),
        new_mo(at=T0 + timedelta(seconds=2)),  # a redelivery of the original
        new_mo(at=T0 + timedelta(seconds=3), msisdn="84911111112"),
        new_mo(at=T0 + timedelta(seconds=4), msisdn="84911111113"),
    ]
    decisions = [
        _mismatch(T0 + timedelta(seconds=5)),
        _mismatch(T0 + timedelta(seconds=5)),  # dropped: its MO is a redelivery
        None,  # left for a worker
        _mismatch(T0 + timedelta(seconds=5)),
    ]
    receipt = NewReceipt(
        carrier="viettel",
        message_id="unknown",
        id_keys=frozenset({"unknown"}),
        stat="DELIVRD",
        err="000",
        final=True,
        received_at=T0,
    )
    committed = store.commit_inbound(
        batch, [receipt], duplicate_window_s=WINDOW, decisions=decisions, lease_s=60
    )
    assert committed.receipts == [None]  # kept for a reply accepted later
    assert rows(store, "SELECT message_id, outbound_id FROM receipts") == [("unknown", None)]
    result = committed.messages
    (a, a_decision, a_out), (dup, dup_decision, dup_out), (b, *b_rest), (c, *c_rest) = result
    assert (a.state, a.outcome) == (InboundState.DECIDED, Outcome.MISMATCH)
    assert a_decision is not None and a_decision.inbound_id == a.id and a_out is not None
    assert (dup.state, dup_decision, dup_out) == (InboundState.DUPLICATE, None, None)
    assert (b.state, b_rest) == (InboundState.RECEIVED, [None, None])
    assert c.state is InboundState.DECIDED and c_rest[1] is not None
    assert rows(store, "SELECT id, state, outcome FROM inbound_messages ORDER BY id") == [
        (original.id, "received", None),
        (a.id, "decided", "mismatch"),
        (dup.id, "duplicate", None),
        (b.id, "received", None),
        (c.id, "decided", "mismatch"),
    ]
    assert rows(
        store, "SELECT inbound_id, id, state FROM outbound_messages ORDER BY inbound_id"
    ) == [(a.id, a_out, "queued"), (c.id, c_rest[1], "queued")]
    assert rows(store, "SELECT inbound_id FROM charges ORDER BY inbound_id") == [(a.id,), (c.id,)]
    # Born leased to the caller: no claimer takes them meanwhile, though due...
    due = T0 + timedelta(seconds=10)
    assert store.claim_outbound(carrier="viettel", now=due, limit=10, lease_s=60) == []
    # ...until the caller gives one back.
    assert store.release_leases([a_out]) == 1
    (claimed,) = store.claim_outbound(carrier="viettel", now=due, limit=10, lease_s=60)
    assert claimed.id == a_out
    # The undecided one is left for a worker.
    assert [mo.id for mo in store.claim_inbound(limit=10)] == [original.id, b.id]


def test_commit_inbound_refuses_a_reset_and_writes_nothing(store: SqlStore) -> None:
    """A RESET_OK waits for its hash, never for a transaction: refused before
    anything is written."""
    receipt = NewReceipt(
        carrier="viettel",
        message_id="1",
        id_keys=frozenset({"1"}),
        stat="DELIVRD",
        err="000",
        final=True,
        received_at=T0,
    )
    (mo,) = store.store_inbound([new_mo(at=T0)], duplicate_window_s=0)
    with pytest.raises(ValueError, match="RESET_OK"):
        store.commit_inbound(
            [new_mo(at=T0, msisdn="84911111119")],
            [receipt],
            duplicate_window_s=WINDOW,
            decisions=[decision(mo)],
        )
    assert rows(store, "SELECT COUNT(*) FROM inbound_messages") == [(1,)]
    assert rows(store, "SELECT COUNT(*) FROM outbound_messages") == [(0,)]
    assert rows(store, "SELECT COUNT(*) FROM receipts") == [(0,)]


@pytest.mark.parametrize(
    ("verdict", "again_is"),
    [
        ("queued", InboundState.DUPLICATE),
        ("accepted", InboundState.DUPLICATE),
        ("failed", InboundState.RECEIVED),
        ("expired", InboundState.RECEIVED),
        ("undeliverable", InboundState.RECEIVED),
    ],
)
def test_an_identical_mo_is_a_new_request_once_the_first_reply_was_given_up(
    store: SqlStore, verdict: str, again_is: InboundState
) -> None:
    """A carrier redelivers on its own schedule, often minutes later: inside the
    window an identical MO is a redelivery. But when the first MO's reply failed
    for good or expired, the subscriber asking again is answered again."""
    (first,) = store.store_inbound([new_mo(at=T0)], duplicate_window_s=WINDOW)
    store.commit_decision(
        decision(first, outcome=Outcome.MISMATCH, code=None, at=T0 + timedelta(seconds=1))
    )
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE outbound_messages SET state = :s"), {"s": verdict})
    (again,) = store.store_inbound(
        [new_mo(at=T0 + timedelta(seconds=30))], duplicate_window_s=WINDOW
    )
    assert again.state is again_is
    # And a redelivery of that second request is a duplicate of it, not of the first.
    (third,) = store.store_inbound(
        [new_mo(at=T0 + timedelta(seconds=40))], duplicate_window_s=WINDOW
    )
    assert third.state is InboundState.DUPLICATE
    expected_original = first.id if again_is is InboundState.DUPLICATE else again.id
    assert rows(store, "SELECT duplicate_of FROM inbound_messages WHERE id = :i", i=third.id) == [
        (expected_original,)
    ]
