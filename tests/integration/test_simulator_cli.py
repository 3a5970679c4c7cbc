"""``smscd simulate``: the control port round trip and the foreground process."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from smscd.simulator import Simulator, SimulatorConfig, main, open_simulator
from smscd.smpp import BindMode, BindResp, DeliverSm, SubmitSmResp
from tests.simulator.esme import DEFAULT_PASSWORD, MiniEsme, open_esme

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import pytest

TIMEOUT = 10.0
REPLY = "Cap lai mat khau thanh cong. Tai khoan: 0123456789/Mat khau: 482913"


@asynccontextmanager
async def replying_esme(
    port: int, *, reply: bool = True, password: str = DEFAULT_PASSWORD
) -> AsyncIterator[MiniEsme]:
    """A transceiver that answers every MO with REPLY to its sender."""
    async with open_esme(port) as esme, trio.open_nursery() as nursery:
        response = await esme.bind(BindMode.TRANSCEIVER, password=password)
        assert isinstance(response, BindResp)
        assert response.command_status == 0

        async def send_reply(mo: DeliverSm) -> None:
            answer = await esme.submit(REPLY, destination_addr=mo.source_addr)
            assert isinstance(answer, SubmitSmResp)

        async def on_deliver(mo: DeliverSm) -> None:
            if reply:
                nursery.start_soon(send_reply, mo)

        esme.on_deliver = on_deliver
        yield esme
        nursery.cancel_scope.cancel()


async def run_main(argv: list[str]) -> int:
    return await trio.to_thread.run_sync(main, argv)


@asynccontextmanager
async def control_sim() -> AsyncIterator[Simulator]:
    async with open_simulator(SimulatorConfig(control_port=0)) as sim:
        assert sim.control_port is not None
        yield sim


async def test_send_prints_the_reply(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim() as sim, replying_esme(sim.port) as esme:
            code = await run_main(
                [
                    "send",
                    "--from",
                    "0327000686",
                    "--control",
                    f"127.0.0.1:{sim.control_port}",
                    "--wait",
                    "5",
                    "BH MK 0123456789",
                ]
            )
            out = capsys.readouterr().out
            assert code == 0
            assert out == (f"MO accepted (deliver_sm_resp status 0x00000000)\nreply: {REPLY}\n")
            [mo] = esme.requests
            assert isinstance(mo, DeliverSm)
            assert (mo.source_addr, mo.source_addr_ton, mo.destination_addr) == (
                "0327000686",
                0,
                "8079",
            )
            assert mo.short_message == b"BH MK 0123456789"
            assert [s.text for s in sim.submitted] == [REPLY]


async def test_send_without_reply_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim() as sim, replying_esme(sim.port, reply=False):
            code = await run_main(
                [
                    "send",
                    "--from",
                    "84327000686",
                    "--to",
                    "8079",
                    "--control",
                    f"127.0.0.1:{sim.control_port}",
                    "--wait",
                    "0.3",
                    "BH MK 0123456789",
                ]
            )
            captured = capsys.readouterr()
            assert code == 1
            assert captured.out == "MO accepted (deliver_sm_resp status 0x00000000)\n"
            assert "no reply to 84327000686 within 0.3 s" in captured.err


async def test_send_without_bound_esme_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim() as sim:
            code = await run_main(
                ["send", "--from", "0327000686", "--control", f"127.0.0.1:{sim.control_port}", "x"]
            )
            captured = capsys.readouterr()
            assert code == 1
            assert "no receiver or transceiver bound" in captured.err


async def test_send_without_simulator_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with trio.fail_after(TIMEOUT):
        code = await run_main(
            ["send", "--from", "0327000686", "--control", f"127.0.0.1:{port}", "x"]
        )
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == (
        f"no simulator listening on 127.0.0.1:{port}: start one with `smscd simulate`\n"
    )


async def test_control_rejects_bad_requests() -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim() as sim:
            assert sim.control_port is not None
            stream = await trio.open_tcp_stream("127.0.0.1", sim.control_port)
            async with stream:
                await stream.send_all(b'not json\n{"op": "shutdown"}\n{"op": "inject_mo"}\n')
                data = b""
                while data.count(b"\n") < 3:
                    data += await stream.receive_some(4096)
            lines = data.decode().splitlines()
            assert all('"event": "error"' in line for line in lines)
            assert "unknown op 'shutdown'" in lines[1]
            assert "'source_addr' must be a non-empty string" in lines[2]


class _Lines:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.seen: list[str] = []

    async def until(self, fragment: str) -> str:
        """The first line, already seen or still to come, containing ``fragment``."""
        for line in self.seen:
            if fragment in line:
                return line
        while True:
            for line in self.buffer.decode().splitlines(keepends=True):
                if not line.endswith("\n"):
                    break
                self.buffer = self.buffer[len(line.encode()) :]
                self.seen.append(line)
                if fragment in line:
                    return line
            chunk = await self.stream.receive_some(4096)
            if not chunk:
                raise AssertionError(f"EOF before {fragment!r}; saw {self.seen}")
            self.buffer += chunk


async def test_foreground_simulator_process(tmp_path: Path) -> None:
    password_file = tmp_path / "bind-password"
    password_file.write_text("s3cr3t\n")
    command = [
        sys.executable,
        "-m",
        "smscd.simulator",
        "--port",
        "0",
        "--control-port",
        "0",
        "--password-file",
        str(password_file),
        "--receipt-delay",
        "0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                functools.partial(
                    trio.run_process, command, stdout=subprocess.PIPE, check=False, env=env
                )
            )
            assert process.stdout is not None
            lines = _Lines(process.stdout)
            banner = await lines.until("listening on")
            assert "password from --password-file" in banner
            port = int(banner.split("listening on 127.0.0.1:")[1].split()[0])
            control = int(banner.rsplit("127.0.0.1:", 1)[1])
            async with open_esme(port) as esme:
                refused = await esme.bind(password="secret")
                assert isinstance(refused, BindResp)
                assert refused.command_status != 0
                await lines.until("ESME_RINVPASWD")
                accepted = await esme.bind(password="s3cr3t")
                assert isinstance(accepted, BindResp)
                assert accepted.command_status == 0
                await lines.until("bound as transceiver")
                response = await esme.submit(REPLY, destination_addr="0327000686")
                assert isinstance(response, SubmitSmResp)
                line = await lines.until("MT from 8079 to 0327000686")
                assert line.rstrip("\n").endswith(f"(accepted as {response.message_id}): {REPLY}")
            await lines.until("session 1: connection closed")
            async with replying_esme(port, password="s3cr3t"):
                code = await run_main(
                    [
                        "send",
                        "--from",
                        "0327000686",
                        "--control",
                        f"127.0.0.1:{control}",
                        "BH MK 0123456789",
                    ]
                )
                assert code == 0
                await lines.until("session 2: MO from 0327000686 to 8079: BH MK 0123456789")
                await lines.until("session 2: MT from 8079 to 0327000686")
            process.send_signal(signal.SIGTERM)
            await lines.until("SIGTERM: stopping")
            assert await process.wait() == 0
            assert not any("s3cr3t" in line for line in lines.seen)
