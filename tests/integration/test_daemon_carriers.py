"""Several carriers: one link per [[smsc]], and a reply always leaves through
the carrier its MO came from (number portability means the prefix says nothing)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest
import trio

from smscd.simulator import SimulatorConfig, open_simulator
from tests.integration.daemon_harness import free_port, prepare_store, start_daemon

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


def two_carrier_config(directory: Path, port_a: int, port_b: int, metrics_port: int) -> Path:
    (directory / "bind.password").write_text("secret\n")
    smscs = "".join(
        f"""
[[smsc]]
name = "{name}"
host = "127.0.0.1"
port = {port}
system_id = "smscd"
password_file = "{directory / "bind.password"}"
throughput = 0
backoff_initial = 0.1
backoff_max = 0.5
charging = "{charging}"
"""
        for name, port, charging in (("viettel", port_a, "mo"), ("mobifone", port_b, "mt"))
    )
    config = directory / "smscd.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{directory / "smscd.db"}"
{smscs}
[reset]
hash_memory_kib = 1024
hash_time_cost = 1

[log]
format = "json"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"""
    )
    return config


async def test_each_reply_leaves_through_its_own_carrier(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_simulator(SimulatorConfig(receipt_delay=0.05)) as viettel,
            open_simulator(SimulatorConfig(receipt_delay=0.05)) as mobifone,
            trio.open_nursery() as nursery,
        ):
            metrics_port = free_port()
            config = two_carrier_config(tmp_path, viettel.port, mobifone.port, metrics_port)
            await trio.to_thread.run_sync(prepare_store, tmp_path, config)
            daemon = await start_daemon(nursery, tmp_path, config, viettel, metrics_port)
            await viettel.wait_bound(1)
            await mobifone.wait_bound(1)

            # A Viettel-looking number whose MO arrives through MobiFone (ported).
            assert await mobifone.inject_mo(source_addr="84327000686", text="BH MK 0123456789") == 0
            assert await viettel.inject_mo(source_addr="84911111111", text="xin chao") == 0
            (to_mobifone,) = await mobifone.wait_submitted(1)
            (to_viettel,) = await viettel.wait_submitted(1)
            assert to_mobifone.event.destination_addr == "84327000686"
            assert to_mobifone.text.startswith("Cap lai mat khau thanh cong.")
            assert to_viettel.event.destination_addr == "84911111111"
            assert to_viettel.text.startswith("Tin nhan sai cu phap.")

            # Charging per carrier: MO-billed is final at once, MT-billed on DELIVRD.
            with trio.fail_after(10):
                while daemon.query("SELECT carrier, mode, state FROM charges ORDER BY carrier") != [
                    ("mobifone", "mt", "final"),
                    ("viettel", "mo", "final"),
                ]:
                    await trio.sleep(0.05)

            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
            assert viettel.unbinds_received == 1
            assert mobifone.unbinds_received == 1
