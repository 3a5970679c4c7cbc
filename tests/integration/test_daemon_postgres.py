"""Two daemons sharing one PostgreSQL store, both bound to the same SMSC: every
MO is answered exactly once and charged once, whichever daemon received it
(each claims replies with FOR UPDATE SKIP LOCKED; recovery may offer an MO to
both, and the conditional RECEIVED -> DECIDED update lets only one decide it).

Runs when SMSCD_TEST_PG_URL is set (CI sets it when a local server answers);
fails, not skips, if it is set and the server is unreachable.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import trio

from smscd.simulator import SimulatorConfig, open_simulator
from tests.integration.daemon_harness import free_port, prepare_store, start_daemon
from tests.pg import PG_ENV, PgSchemas

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    schemas = PgSchemas(base)
    try:
        yield schemas.new()
    finally:
        schemas.drop_all()


def config_for(directory: Path, url: str, smsc_port: int, metrics_port: int) -> Path:
    (directory / "bind.password").write_text("secret\n")
    path = directory / "smscd.toml"
    path.write_text(
        f"""
[database]
url = "{url}"

[[smsc]]
name = "sim"
host = "127.0.0.1"
port = {smsc_port}
system_id = "smscd"
password_file = "{directory / "bind.password"}"
throughput = 0
response_timeout = 2
backoff_initial = 0.1
backoff_max = 0.5

[reset]
hash_memory_kib = 1024
hash_time_cost = 1

[log]
format = "json"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"""
    )
    return path


async def test_two_daemons_share_one_store(tmp_path: Path, pg_url: str) -> None:
    with trio.fail_after(90):
        async with (
            open_simulator(SimulatorConfig(receipt_delay=0.05)) as sim,
            trio.open_nursery() as nursery,
        ):
            dirs = [tmp_path / "a", tmp_path / "b"]
            configs = []
            for d in dirs:
                d.mkdir()
                configs.append(config_for(d, pg_url, sim.port, free_port()))
            await trio.to_thread.run_sync(prepare_store, dirs[0], configs[0])
            daemons = [
                await start_daemon(nursery, d, c, sim, 0)
                for d, c in zip(dirs, configs, strict=True)
            ]
            sessions = await sim.wait_bound(2)
            assert len({s.id for s in sessions}) == 2

            senders = [f"8490300{i:04d}" for i in range(40)]
            for i, sender in enumerate(senders):
                text = f"BH MK 55{i:08d}" if i % 3 else "xin chao"
                status = await sim.inject_mo(
                    source_addr=sender, text=text, session=sessions[i % 2].id
                )
                assert status == 0
            with trio.fail_after(60):
                while len({s.event.destination_addr for s in sim.submitted}) < len(senders):
                    await trio.sleep(0.05)
            await trio.sleep(0.5)  # time for a second reply, were there one

            per_dest = Counter(s.event.destination_addr for s in sim.submitted)
            assert all(n == 1 for n in per_dest.values()), per_dest
            engine = sa.create_engine(pg_url)
            try:
                with engine.connect() as conn:
                    charges = conn.execute(sa.text("SELECT COUNT(*) FROM charges")).scalar()
                    decided = conn.execute(
                        sa.text("SELECT COUNT(*) FROM inbound_messages WHERE state = 'decided'")
                    ).scalar()
            finally:
                engine.dispose()
            assert charges == decided == len(senders)
            # Both did part of the work.
            assert all('"reset_decided"' in p.log_text() for p in daemons)
            for process in daemons:
                process.signal(signal.SIGTERM)
            for process in daemons:
                assert await process.wait_exit() == 0
            nursery.cancel_scope.cancel()
