"""The committer, in process: its hand-off never waits (with every submitter
busy and the buffer full, a reply is refused and the committer frees its
lease so the claimer takes it, instead of holding up the next intake
transaction), and it decides at most one reset per sender, and only for a
sender it holds. How the daemon's transactions gather their batches: a few
receipts wait a little for an MO, never the other way round, and hashed
resets wait for a batch only while hashing is the bottleneck. Recovery never
takes an MO the committer has not handed on yet."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import trio

from smscd._hashing import HashProcesses
from smscd.config import parse_config
from smscd.daemon import Daemon
from smscd.link import InboundMo, Link
from smscd.reset import (
    ChargingMode,
    Decision,
    HashParams,
    InboundMessage,
    InboundState,
    Outcome,
    PasswordHasher,
    Pipeline,
)
from smscd.service import (
    RECEIPT_LINGER_S,
    RESET_BATCH_PER_HASHER,
    RESET_LINGER_S,
    _batching,
    _items,
)
from smscd.smpp import CommandStatus
from smscd.store import NewInbound, OutboundMessage
from smscd.store.sql import open_store
from tests.store.helpers import PHONE, add_account, new_mo, rows

if TYPE_CHECKING:
    from pathlib import Path


def _daemon(tmp_path: Path) -> Daemon:
    url = f"sqlite:///{tmp_path / 'smscd.db'}"
    config = parse_config(
        {
            "database": {"url": url},
            "smsc": [
                {
                    "name": "sim",
                    "host": "127.0.0.1",
                    "port": 9,
                    "system_id": "smscd",
                    "password": "secret",
                }
            ],
            "metrics": {"listen": ""},
        },
        source="test.toml",
    )
    return Daemon(
        config=config,
        store=open_store(url, create_if_missing=True),
        pipeline=Pipeline(
            policy=config.reset,
            templates=config.templates,
            hasher=PasswordHasher(HashParams(memory_kib=1024, time_cost=1)),
        ),
        links={"sim": Link(config.smscs[0].link)},
    )


def _mo(i: int) -> tuple[InboundMessage, Decision]:
    now = datetime.now(UTC)
    mo = InboundMessage(
        id=i,
        carrier="sim",
        source_addr="84911111111",
        source_addr_ton=1,
        source_addr_npi=1,
        msisdn="84911111111",
        destination_addr="8079",
        text="xin chao",
        received_at=now,
        state=InboundState.DECIDED,
    )
    decision = Decision(
        inbound_id=i,
        outcome=Outcome.BAD_SYNTAX,
        bhxh_code=None,
        reply_text="help",
        password_hash=None,
        charge_vnd=1000,
        charging=ChargingMode.MO,
        decided_at=now,
    )
    return mo, decision


async def test_hand_off_takes_a_buffer_full_then_refuses(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    send, receive = trio.open_memory_channel[OutboundMessage](2)
    daemon.handoff["sim"] = send
    results = [daemon.hand_off_now(*_mo(i), outbound_id=100 + i) for i in range(3)]
    assert results == [True, True, False]
    first = receive.receive_nowait()
    assert (first.id, first.destination_addr, first.body) == (100, "84911111111", "help")
    # A submitter took one: the next fits again.
    assert daemon.hand_off_now(*_mo(3), outbound_id=103)
    assert not daemon.hand_off_now(*_mo(4), outbound_id=104)
    # No outbox for the carrier (stopping): nothing refused, the lease runs out.
    del daemon.handoff["sim"]
    assert daemon.hand_off_now(*_mo(5), outbound_id=105)
    daemon.store.close()


def test_intake_decides_one_reset_per_held_sender(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    add_account(daemon.store)  # 0123456789, registered to 84327000686
    now = datetime.now(UTC)

    def mo(text: str) -> NewInbound:
        return new_mo(carrier="sim", text=text, at=now)

    batch = [mo("BH MK 0123456789"), mo("BH MK 0123456789 cam on"), mo("xin chao")]
    committed, resets = daemon.intake_batch(batch, [], {PHONE})
    first, second, help_mo = (row for row, _decision, _outbound in committed.messages)
    # The first is a reset, decided but left RECEIVED until its hash is committed.
    assert list(resets) == [first.id]
    reset = resets[first.id].reset
    assert reset.decision.outcome is Outcome.RESET_OK
    assert re.fullmatch(r"\d{6}", reset.password)
    assert reset.password in reset.decision.reply_text
    assert first.state is InboundState.RECEIVED
    # The second reached the rate limits after it: a worker decides it later.
    assert second.state is InboundState.RECEIVED
    assert second.id not in resets
    # Help needs no sender: decided in the same transaction.
    assert help_mo.state is InboundState.DECIDED

    # A sender the committer does not hold (a decision in progress): no reset.
    committed, resets = daemon.intake_batch([mo("BH MK 0123456789 xin")], [], set())
    assert resets == {}
    assert [row.state for row, _d, _o in committed.messages] == [InboundState.RECEIVED]
    assert daemon.store.find_account("0123456789").password_hash is None  # type: ignore[union-attr]
    daemon.store.close()


def _pending_mo() -> _items._PendingMo:
    return _items._PendingMo(item=None, new=new_mo())  # type: ignore[arg-type]


def _pending_receipt() -> _items._PendingReceipt:
    return _items._PendingReceipt(item=None, new=None)  # type: ignore[arg-type]


async def test_receipts_wait_a_little_for_an_mo_and_an_mo_waits_for_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    daemon = _daemon(tmp_path)
    send, receive = trio.open_memory_channel[_items._Pending](100)
    receipt, mo, later = _pending_receipt(), _pending_mo(), _pending_receipt()

    # A receipt alone waits, then goes alone.
    start = trio.current_time()
    assert await daemon.gather_intake(receive, receipt) == [receipt]
    assert trio.current_time() - start == pytest.approx(RECEIPT_LINGER_S)

    # A receipt, then an MO a little later: one batch, as soon as the MO comes.
    async def mo_soon() -> None:
        await trio.sleep(RECEIPT_LINGER_S / 5)
        send.send_nowait(mo)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mo_soon)
        assert await daemon.gather_intake(receive, receipt) == [receipt, mo]
    assert trio.current_time() - start == pytest.approx(RECEIPT_LINGER_S / 5)

    # An MO goes at once, with what was already waiting.
    send.send_nowait(later)
    start = trio.current_time()
    assert await daemon.gather_intake(receive, mo) == [mo, later]
    assert trio.current_time() == start
    daemon.store.close()


async def test_resets_wait_for_a_batch_only_while_hashing_is_the_bottleneck(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    daemon = _daemon(tmp_path)
    # Two processes that never start: every password waits for one.
    daemon.hashing = HashProcesses(HashParams(memory_kib=1024, time_cost=1), 2)
    batch = RESET_BATCH_PER_HASHER * 2
    batches: list[list[str]] = []

    async def write(items: list[str]) -> list[str | Exception]:
        batches.append(items)
        return [item.upper() for item in items]

    group = _batching._GroupCommit(write, linger=daemon.reset_linger)
    results: list[str] = []

    async def submit(item: str, delay: float) -> None:
        await trio.sleep(delay)
        results.append(await group.submit(item))

    async with trio.open_nursery() as nursery:
        # Less than a batch of passwords waiting: a reset is committed alone at once.
        for _ in range(batch - 1):
            nursery.start_soon(daemon.hashing.hash, "111111")
        await trio.testing.wait_all_tasks_blocked()
        assert daemon.reset_linger() is None
        start = trio.current_time()
        assert await group.submit("a") == "A"
        assert trio.current_time() == start
        assert batches == [["a"]]

        # A batch waiting: the first reset waits for the others, and the
        # batch goes in one transaction as soon as its last one comes.
        nursery.start_soon(daemon.hashing.hash, "222222")
        await trio.testing.wait_all_tasks_blocked()
        assert daemon.reset_linger() == _batching._Linger(seconds=RESET_LINGER_S, size=batch)
        items = [f"b{i}" for i in range(batch + 1)]
        step = RESET_LINGER_S / (2 * batch)
        start = trio.current_time()
        async with trio.open_nursery() as many:
            for i, item in enumerate(items):
                many.start_soon(submit, item, i * step)
        # The one after the batch waited the whole linger for company.
        assert trio.current_time() - start == pytest.approx(batch * step + RESET_LINGER_S)
        assert batches[1:] == [items[:batch], items[batch:]]
        assert sorted(results) == sorted(item.upper() for item in items)

        # Fewer come: they go together after the linger.
        start = trio.current_time()
        async with trio.open_nursery() as few:
            few.start_soon(submit, "c", 0)
            few.start_soon(submit, "d", step)
        assert trio.current_time() - start == pytest.approx(RESET_LINGER_S)
        assert batches[3:] == [["c", "d"]]
        nursery.cancel_scope.cancel()
    daemon.store.close()


class _Acks:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    async def ack(self, status: int) -> None:
        self.statuses.append(status)


async def test_the_committer_never_waits_for_a_resetter_and_recovery_takes_the_rest(
    tmp_path: Path,
) -> None:
    """With no resetter free, the committer does not wait: both MOs are
    acknowledged, their resets are left RECEIVED (senders released), and
    recovery, woken at once rather than at its period, hands each to a worker
    exactly once."""
    daemon = _daemon(tmp_path)
    senders = [("0123456789", "84327000686"), ("0123456780", "84327000687")]
    acks = _Acks()
    send_inbound, receive_inbound = trio.open_memory_channel[_items._Pending](10)
    send_decide, receive_decide = trio.open_memory_channel[InboundMessage](10)
    send_reset, receive_reset = trio.open_memory_channel[_items._Reset](0)
    for code, phone in senders:
        add_account(daemon.store, code, phone)
        send_inbound.send_nowait(_text_mo(acks, phone, f"BH MK {code}"))
    with trio.fail_after(2):  # well under recovery's period (5 s)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.committer, receive_inbound, send_decide.clone(), send_reset)
            nursery.start_soon(daemon.recovery, send_decide)
            first = await receive_decide.receive()
            second = await receive_decide.receive()
            assert acks.statuses == [0, 0]
            assert sorted([first.msisdn, second.msisdn]) == [phone for _code, phone in senders]
            assert {first.state, second.state} == {InboundState.RECEIVED}
            # Each once: recovery's next pass finds them in progress.
            daemon.recovery_wanted.set()
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                receive_decide.receive_nowait()
            with pytest.raises(trio.WouldBlock):
                receive_reset.receive_nowait()
            # The senders are free for the workers that will decide them.
            assert all(daemon.senders.try_hold(phone) for _code, phone in senders)
            nursery.cancel_scope.cancel()
    daemon.store.close()


def _text_mo(acks: _Acks, phone: str, text: str) -> _items._PendingMo:
    new = new_mo(carrier="sim", msisdn=phone, source_addr=phone, text=text)
    item = InboundMo(
        carrier="sim",
        source_addr=phone,
        source_addr_ton=1,
        source_addr_npi=1,
        destination_addr="8079",
        text=text,
        data_coding=0,
        parts=1,
        ack_handle=acks,
    )
    return _items._PendingMo(item=item, new=new)


async def test_an_mo_the_pipeline_fails_on_is_quarantined_and_its_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that one MO's data reaches (here: the pipeline raises for its
    text) fails that MO alone: acknowledged (it is stored), quarantined with
    the stage and the reason, counted; the MOs beside it are answered; the
    committer and the worker go on."""
    daemon = _daemon(tmp_path)
    decide = daemon.pipeline.decide

    def poisoned(mo: InboundMessage, *args: object, **kwargs: object) -> Decision:
        if "POISON" in mo.text:
            raise IndexError("tuple index out of range")
        return decide(mo, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Pipeline, "decide", lambda self, *a, **k: poisoned(*a, **k))
    acks = _Acks()
    send_inbound, receive_inbound = trio.open_memory_channel[_items._Pending](10)
    send_decide, receive_decide = trio.open_memory_channel[InboundMessage](10)
    send_reset, _receive_reset = trio.open_memory_channel[_items._Reset](10)
    send_inbound.send_nowait(_text_mo(acks, "84911111111", "xin chao"))
    send_inbound.send_nowait(_text_mo(acks, "84911111112", "POISON"))
    send_inbound.send_nowait(_text_mo(acks, "84911111113", "BH MK 12345"))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.committer, receive_inbound, send_decide, send_reset)
            nursery.start_soon(daemon.worker, receive_decide)
            while daemon.metrics.poison.labels(stage="decide")._value.get() < 1:
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            # The committer and the worker are still there: one more MO is decided.
            send_inbound.send_nowait(_text_mo(acks, "84911111114", "xin chao"))
            while len(acks.statuses) < 4:
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert acks.statuses == [0, 0, 0, 0]
    states = rows(
        daemon.store,
        "SELECT source_addr, state, outcome, quarantine_stage, quarantine_reason"
        " FROM inbound_messages ORDER BY id",
    )
    assert states == [
        ("84911111111", "decided", "bad_syntax", None, None),
        ("84911111112", "quarantined", None, "decide", "IndexError: tuple index out of range"),
        ("84911111113", "decided", "invalid_code", None, None),
        ("84911111114", "decided", "bad_syntax", None, None),
    ]
    daemon.store.close()


async def test_an_mo_the_store_refuses_is_refused_for_good_and_its_batch_is_stored(
    tmp_path: Path,
) -> None:
    """Defence behind the SMPP edge: an MO whose data the store cannot take
    (here a text no encoding holds) fails its batch's transaction; each MO is
    then stored alone, the bad one answered ESME_RX_P_APPN (the SMSC must not
    redeliver it), the others acknowledged 0 and answered."""
    daemon = _daemon(tmp_path)
    acks = {phone: _Acks() for phone in ("84911111111", "84911111112", "84911111113")}
    texts = {"84911111111": "xin chao", "84911111112": "bad \udce9", "84911111113": "BH MK 1"}
    send_inbound, receive_inbound = trio.open_memory_channel[_items._Pending](10)
    send_decide, _receive_decide = trio.open_memory_channel[InboundMessage](10)
    send_reset, _receive_reset = trio.open_memory_channel[_items._Reset](10)
    for phone, text in texts.items():
        send_inbound.send_nowait(_text_mo(acks[phone], phone, text))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.committer, receive_inbound, send_decide, send_reset)
            while not all(a.statuses for a in acks.values()):
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert {phone: a.statuses for phone, a in acks.items()} == {
        "84911111111": [0],
        "84911111112": [CommandStatus.ESME_RX_P_APPN],
        "84911111113": [0],
    }
    assert rows(daemon.store, "SELECT source_addr, outcome FROM inbound_messages ORDER BY id") == [
        ("84911111111", "bad_syntax"),
        ("84911111113", "invalid_code"),
    ]
    assert daemon.metrics.poison.labels(stage="intake")._value.get() == 1
    daemon.store.close()
