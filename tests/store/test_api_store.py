"""The HTTP API's part of the store, on SQLite and PostgreSQL: clients and
their token hashes, an MT queued with its charge in one transaction and only
once per client_ref (also when two requests race), its state and receipt, the
callback its final state owes, and the reports and prune that now meet rows
with no MO behind them."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from smscd.api import ApiClient, MessageRequest, token_hash
from smscd.reset import ChargingMode
from smscd.store import StoreRejected
from smscd.store.types import NewReceipt
from tests.store.helpers import T0

if TYPE_CHECKING:
    from collections.abc import Callable

    from smscd.store.sql import SqlStore

APP = ApiClient(
    id=0,
    name="vssid-app",
    scopes=frozenset({"messages"}),
    sender="VssID",
    sender_ton=5,
    sender_npi=0,
    price_vnd=300,
    rate_per_s=20.0,
    callback_url="http://127.0.0.1:9/cb",
)
OTP = MessageRequest(msisdn="84327000686", text="Ma OTP VssID cua ban la 482913", client_ref="o1")


def _rows(store: SqlStore, sql: str) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


def _queue(
    store: SqlStore, client: ApiClient, request: MessageRequest = OTP, **kwargs: object
) -> tuple[int, bool]:
    return store.queue_api_message(
        client,
        request,
        carrier=str(kwargs.get("carrier", "viettel")),
        charging=kwargs.get("charging", ChargingMode.MT),  # type: ignore[arg-type]
        now=T0,
    )


def test_clients_are_found_by_token_hash_until_revoked(store: SqlStore) -> None:
    client = store.add_api_client(APP, token_hash=token_hash("tok"), now=T0)
    assert client.id > 0
    assert store.authenticate_api_client(token_hash("tok")) == client
    assert store.authenticate_api_client(token_hash("other")) is None
    with pytest.raises(StoreRejected):
        store.add_api_client(APP, token_hash=token_hash("tok2"), now=T0)
    assert _rows(store, "SELECT token_hash FROM api_clients") == [(token_hash("tok"),)]
    assert store.revoke_api_client("vssid-app", now=T0) is True
    assert store.revoke_api_client("vssid-app", now=T0) is False
    assert store.authenticate_api_client(token_hash("tok")) is None
    (listed,) = store.list_api_clients()
    assert (listed.client, listed.revoked_at) == (client, T0)


def test_an_mt_is_queued_with_its_charge_once_per_client_ref(store: SqlStore) -> None:
    client = store.add_api_client(APP, token_hash="h", now=T0)
    first = _queue(store, client)
    assert first[1] is True
    assert _queue(store, client) == (first[0], False)
    # Another client's same reference is another message.
    other = store.add_api_client(
        ApiClient(id=0, name="portal", scopes=frozenset({"messages"})), token_hash="h2", now=T0
    )
    assert _queue(store, other)[1] is True
    assert _rows(
        store,
        "SELECT o.inbound_id, o.client_ref, o.source_addr, o.source_addr_ton, o.destination_addr,"
        " o.state, c.channel, c.amount_vnd, c.mode, c.state FROM outbound_messages o"
        " JOIN charges c ON c.outbound_id = o.id ORDER BY o.id",
    ) == [
        (None, "o1", "VssID", 5, "84327000686", "queued", "api:vssid-app", 300, "mt", "pending"),
        (None, "o1", None, None, "84327000686", "queued", "api:portal", 0, "mt", "pending"),
    ]
    (claimed, *_rest) = store.claim_outbound(carrier="viettel", now=T0, limit=10, lease_s=60)
    assert (claimed.inbound_id, claimed.source_addr, claimed.body) == (None, "VssID", OTP.text)


def test_racing_requests_with_one_client_ref_queue_one_mt(
    store: SqlStore, store_factory: Callable[[], SqlStore]
) -> None:
    client = store.add_api_client(APP, token_hash="h", now=T0)
    stores = [store_factory() for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    results: list[tuple[int, bool]] = []

    def one(each: SqlStore) -> None:
        barrier.wait(timeout=10)
        results.append(_queue(each, client))

    threads = [threading.Thread(target=one, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(created for _id, created in results) == [False] * 5 + [True]
    assert len({message_id for message_id, _created in results}) == 1
    assert _rows(store, "SELECT COUNT(*) FROM outbound_messages") == [(1,)]
    assert _rows(store, "SELECT COUNT(*) FROM charges") == [(1,)]


def test_a_delivered_mt_has_its_state_its_charge_final_and_a_callback(store: SqlStore) -> None:
    client = store.add_api_client(APP, token_hash="h", now=T0)
    message_id, _ = _queue(store, client)
    status = store.api_message_status(client.id, message_id)
    assert status is not None and (status.state, status.receipt_stat) == ("queued", None)
    assert store.api_message_status(client.id + 1, message_id) is None
    store.mark_accepted(message_id, message_id="abc", id_keys=frozenset({"abc"}), now=T0)
    assert store.due_api_callbacks(now=T0) == []
    later = T0 + timedelta(seconds=5)
    assert (
        store.record_receipt(
            NewReceipt(
                carrier="viettel",
                message_id="abc",
                id_keys=frozenset({"abc"}),
                stat="DELIVRD",
                err="000",
                final=True,
                received_at=later,
            )
        )
        == message_id
    )
    status = store.api_message_status(client.id, message_id)
    assert status is not None
    assert (status.state, status.receipt_stat, status.final_at) == ("delivered", "DELIVRD", later)
    assert _rows(store, "SELECT state, amount_vnd FROM charges") == [("final", 300)]
    (due,) = store.due_api_callbacks(now=later)
    assert (due.outbound_id, due.state, due.receipt_stat, due.url, due.attempts) == (
        message_id,
        "delivered",
        "DELIVRD",
        "http://127.0.0.1:9/cb",
        0,
    )
    store.api_callback_retry(due.id, error="HTTP 500", next_attempt_at=later + timedelta(seconds=2))
    assert store.due_api_callbacks(now=later) == []
    (again,) = store.due_api_callbacks(now=later + timedelta(seconds=2))
    assert again.attempts == 1
    store.api_callback_done(again.id, outcome="delivered", error=None, now=later)
    assert store.due_api_callbacks(now=later + timedelta(days=1)) == []
    # A second final receipt owes nothing more.
    store.record_receipt(
        NewReceipt(
            carrier="viettel",
            message_id="abc",
            id_keys=frozenset({"abc"}),
            stat="UNDELIV",
            err="001",
            final=True,
            received_at=later,
        )
    )
    assert _rows(store, "SELECT COUNT(*) FROM api_callbacks") == [(1,)]


def test_a_rejected_or_expired_mt_voids_its_charge_and_owes_a_callback(store: SqlStore) -> None:
    client = store.add_api_client(APP, token_hash="h", now=T0)
    rejected, _ = _queue(store, client)
    expired, _ = _queue(
        store, client, MessageRequest(msisdn="84327000686", text="x", client_ref="o2")
    )
    store.mark_failed(rejected, status=0x45, now=T0)
    assert store.expire_replies(now=T0 + timedelta(hours=1), max_age_s=900, max_attempts=10)
    # The bodies are masked (the digits of an OTP) like a reply's password.
    assert _rows(
        store,
        "SELECT o.state, o.body, c.state FROM outbound_messages o"
        " JOIN charges c ON c.outbound_id = o.id ORDER BY o.id",
    ) == [("failed", "Ma OTP VssID cua ban la ******", "void"), ("expired", "x", "void")]
    assert sorted(
        (c.outbound_id, c.state) for c in store.due_api_callbacks(now=T0 + timedelta(hours=2))
    ) == [(rejected, "failed"), (expired, "expired")]


def test_a_client_without_a_callback_url_owes_none(store: SqlStore) -> None:
    client = store.add_api_client(
        ApiClient(id=0, name="portal", scopes=frozenset({"messages"})), token_hash="h", now=T0
    )
    message_id, _ = _queue(store, client)
    store.mark_failed(message_id, status=0x45, now=T0)
    assert _rows(store, "SELECT COUNT(*) FROM api_callbacks") == [(0,)]


def test_charges_report_splits_by_channel_and_prune_takes_api_mts(store: SqlStore) -> None:
    client = store.add_api_client(APP, token_hash="h", now=T0)
    delivered, _ = _queue(store, client, charging=ChargingMode.MO)
    queued, _ = _queue(
        store, client, MessageRequest(msisdn="84327000686", text="x", client_ref="o2")
    )
    store.mark_accepted(delivered, message_id="abc", id_keys=frozenset({"abc"}), now=T0)
    (row,) = store.charges_report(start=None, end=None)
    assert (row.day, row.carrier, row.channel, row.mo_received) == (
        date(2024, 11, 21),
        "viettel",
        "api:vssid-app",
        0,
    )
    assert (row.charged, row.amount_vnd, row.pending, row.void) == (1, 300, 1, 0)
    counts = store.prune(T0 + timedelta(days=400))
    assert (counts.outbound, counts.charges) == (1, 1)
    assert _rows(store, "SELECT id FROM outbound_messages") == [(queued,)]


def test_a_batch_queues_each_reference_once(store: SqlStore) -> None:
    """The daemon's group commit: one transaction for many requests, the same
    reference twice in it (or already queued) queued once."""
    client = store.add_api_client(APP, token_hash="h", now=T0)
    before, _ = _queue(store, client)
    second = MessageRequest(msisdn="84903000001", text="b", client_ref="o2")
    third = MessageRequest(msisdn="84903000002", text="c", client_ref="o3")
    results = store.queue_api_messages(
        [
            (client, second, "viettel", ChargingMode.MO),
            (client, OTP, "viettel", ChargingMode.MO),
            (client, second, "viettel", ChargingMode.MO),
            (client, third, "vinaphone", ChargingMode.MT),
        ],
        now=T0,
    )
    (o2, created2), (o1, created1), (o2_again, created2_again), (o3, created3) = results
    assert (o1, created1) == (before, False)
    assert (created2, o2_again, created2_again, created3) == (True, o2, False, True)
    assert _rows(
        store,
        "SELECT o.id, o.client_ref, o.carrier, c.mode, c.state FROM outbound_messages o"
        " JOIN charges c ON c.outbound_id = o.id ORDER BY o.id",
    ) == [
        (before, "o1", "viettel", "mt", "pending"),
        (o2, "o2", "viettel", "mo", "final"),
        (o3, "o3", "vinaphone", "mt", "pending"),
    ]


async def _no_thread(*args: object, **kwargs: object) -> None:
    raise AssertionError("this test calls the blocking method itself")


def test_one_refused_item_of_a_batch_fails_alone(store: SqlStore) -> None:
    """The daemon's group commit: a batch the store refuses is queued item by
    item, and only the refused item's request fails."""
    from types import SimpleNamespace

    from smscd.config import ApiConfig
    from smscd.service.api import DaemonApi

    client = store.add_api_client(APP, token_hash="h", now=T0)
    ghost = ApiClient(id=client.id + 100, name="ghost", scopes=frozenset({"messages"}))
    api = DaemonApi(
        daemon=SimpleNamespace(store=store, db=_no_thread),  # type: ignore[arg-type]
        api=ApiConfig(default_route="viettel"),
    )
    second = MessageRequest(msisdn="84903000001", text="b", client_ref="o2")
    first, refused, last = api._queue(
        [
            (client, OTP, "viettel", ChargingMode.MO),
            (ghost, OTP, "viettel", ChargingMode.MO),  # no such client: a foreign key
            (client, second, "viettel", ChargingMode.MO),
        ]
    )
    assert isinstance(refused, StoreRejected)
    assert isinstance(first, tuple) and isinstance(last, tuple)
    assert (first[1], last[1]) == (True, True)
    assert _rows(store, "SELECT client_ref FROM outbound_messages ORDER BY id") == [
        ("o1",),
        ("o2",),
    ]
