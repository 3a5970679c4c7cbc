"""Invariant 1 with the store down: the SMSC gets ESME_RX_T_APPN (redeliver
later), never a 0 for an MO that was not committed; once the store is back the
redelivered MO is answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from smscd.config import parse_config
from smscd.daemon import Daemon
from smscd.link import Link
from smscd.reset import HashParams, PasswordHasher, Pipeline
from smscd.simulator import SimulatorConfig, open_simulator
from smscd.smpp import CommandStatus
from smscd.store import StoreUnavailable
from smscd.store.sql import InboundCommit, SqlStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


class FlakyStore(SqlStore):
    """The real store, except that intake (the daemon's commit_inbound) fails
    while ``down`` is set."""

    down = True

    def commit_inbound(self, *args: Any, **kwargs: Any) -> InboundCommit:
        if self.down:
            raise StoreUnavailable("database is locked")
        return super().commit_inbound(*args, **kwargs)


async def test_store_down_answers_tempfail_then_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'smscd.db'}"
    real = open_store(url, create_if_missing=True)
    store = FlakyStore(real.engine, url=url)
    with trio.fail_after(30):
        async with open_simulator(SimulatorConfig(receipt_delay=0.05)) as sim:
            config = parse_config(
                {
                    "database": {"url": url},
                    "smsc": [
                        {
                            "name": "sim",
                            "host": "127.0.0.1",
                            "port": sim.port,
                            "system_id": "smscd",
                            "password": "secret",
                            "throughput": 0,
                        }
                    ],
                    "metrics": {"listen": ""},
                },
                source="test.toml",
            )
            daemon = Daemon(
                config=config,
                store=store,
                pipeline=Pipeline(
                    policy=config.reset,
                    templates=config.templates,
                    hasher=PasswordHasher(HashParams(memory_kib=1024, time_cost=1)),
                ),
                links={"sim": Link(config.smscs[0].link)},
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.serve)
                await sim.wait_bound(1)

                status = await sim.inject_mo(source_addr="84911111111", text="xin chao")
                assert status == CommandStatus.ESME_RX_T_APPN
                assert store.claim_inbound(limit=10) == []
                assert sim.submitted == []

                store.down = False  # the SMSC redelivers
                assert await sim.inject_mo(source_addr="84911111111", text="xin chao") == 0
                (reply,) = await sim.wait_submitted(1)
                assert reply.text.startswith("Tin nhan sai cu phap.")
                nursery.cancel_scope.cancel()
    store.close()
