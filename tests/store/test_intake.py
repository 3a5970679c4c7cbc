from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from smscd.store.types import InboundState, Outcome
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
