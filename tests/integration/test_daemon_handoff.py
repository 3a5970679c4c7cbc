"""The committer, in process: its hand-off never waits (with every submitter
busy and the buffer full, a reply is refused and the committer frees its
lease so the claimer takes it, instead of holding up the next intake
transaction), and it decides at most one reset per sender, and only for a
sender it holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from smscd.config import parse_config
from smscd.daemon import Daemon
from smscd.link import Link
from smscd.reset import HashParams, PasswordHasher, Pipeline
from smscd.store import (
    ChargingMode,
    Decision,
    InboundMessage,
    InboundState,
    NewInbound,
    OutboundMessage,
    Outcome,
)
from smscd.store.sql import open_store
from tests.store.helpers import PHONE, add_account, new_mo

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
