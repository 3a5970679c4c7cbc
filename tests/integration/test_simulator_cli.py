"""``smscd simulate``: the control port round trip and the foreground process."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smscd.simulator import Simulator, SimulatorConfig, main, open_simulator
from smscd.smpp import BindMode, BindResp, CommandStatus, DeliverSm, SubmitSmResp
from tests.simulator.esme import DEFAULT_PASSWORD, MiniEsme, open_esme

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

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


# --- the control port's fault requests ------------------------------------------


async def control_exchange(port: int, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one control request; the answer lines up to the first final one."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(json.dumps(request).encode() + b"\n")
        lines = _Lines(stream)
        answers: list[dict[str, Any]] = []
        while True:
            answer = json.loads(await lines.until("event"))
            lines.seen.clear()
            answers.append(answer)
            if answer["event"] not in ("mo_accepted", "burst_sent"):
                return answers


@asynccontextmanager
async def control_sim_and_esme() -> AsyncIterator[tuple[Simulator, int, MiniEsme]]:
    async with control_sim() as sim, open_esme(sim.port) as esme:
        assert sim.control_port is not None
        response = await esme.bind()
        assert isinstance(response, BindResp)
        assert response.command_status == 0
        yield sim, sim.control_port, esme


async def test_control_burst_reports_every_answer() -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim_and_esme() as (_, port, esme):
            esme.deliver_status = CommandStatus.ESME_RX_T_APPN
            sent, answered = await control_exchange(
                port,
                {"op": "burst", "n": 5, "source_addr": "+84903{i:06d}", "text": "hello {i}"},
            )
            assert sent == {"event": "burst_sent", "n": 5, "written": True}
            assert answered["event"] == "burst_answered"
            assert (answered["n"], answered["answered"], answered["complete"]) == (5, 5, True)
            assert answered["statuses"] == [CommandStatus.ESME_RX_T_APPN] * 5
            assert all(0 <= seconds < TIMEOUT for seconds in answered["seconds"])
            delivered = [r for r in esme.requests if isinstance(r, DeliverSm)]
            assert [(d.source_addr, d.source_addr_ton, d.short_message) for d in delivered] == [
                (f"84903{i:06d}", 1, f"hello {i}".encode()) for i in range(5)
            ]


async def test_control_burst_without_answers_within_wait() -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim_and_esme() as (_, port, esme):
            esme.deliver_status = None
            request = {"op": "burst", "n": 2, "source_addr": "0903000001", "text": "x", "wait": 0.2}
            _, answered = await control_exchange(port, request)
            assert answered["statuses"] == [None, None]
            assert (answered["answered"], answered["complete"]) == (0, False)
            assert {r.source_addr_ton for r in esme.requests if isinstance(r, DeliverSm)} == {0}


async def test_control_fault_settings_and_statistics() -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim_and_esme() as (sim, port, esme):
            ok = [{"event": "ok"}]
            assert (
                await control_exchange(port, {"op": "delay_submit_responses", "seconds": 0.3}) == ok
            )
            start = trio.current_time()
            response = await esme.submit()
            assert isinstance(response, SubmitSmResp)
            assert trio.current_time() - start >= 0.3
            request = {"op": "redeliver_refused", "after_s": 0.05, "max_attempts": 2}
            assert await control_exchange(port, request) == ok
            esme.deliver_status = CommandStatus.ESME_RX_T_APPN
            assert await sim.inject_mo() == CommandStatus.ESME_RX_T_APPN
            await esme.wait_requests(DeliverSm, 2)
            [stats] = await control_exchange(port, {"op": "statistics"})
            assert stats == {
                "event": "statistics",
                "sessions": 1,
                "submitted": 1,
                "max_outstanding_submits": 1,
                "deliver_responses": 2,
                "mo_redeliveries": 1,
            }
            assert await control_exchange(port, {"op": "redeliver_refused", "after_s": None}) == ok
            await sim.inject_mo()
            await trio.sleep(0.2)
            assert sim.mo_redeliveries == 1
            [error] = await control_exchange(port, {"op": "delay_submit_responses", "seconds": -1})
            assert error == {
                "event": "error",
                "message": "'seconds' must be a number from 0 to 300",
            }


async def test_control_send_raw() -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim_and_esme() as (_, port, esme):
            pdu = struct.pack(">IIII", 16, 0x00000999, 0, 4242).hex()
            assert await control_exchange(port, {"op": "send_raw", "pdu": pdu}) == [
                {"event": "raw_answered", "status": CommandStatus.ESME_RINVCMDID}
            ]
            esme.answer_enquire_link = False
            silent = struct.pack(">IIII", 16, 0x00000015, 0, 4243).hex()
            assert await control_exchange(port, {"op": "send_raw", "pdu": silent, "wait": 0.1}) == [
                {"event": "raw_answered", "status": None}
            ]
            [error] = await control_exchange(port, {"op": "send_raw", "pdu": "zz"})
            assert error["event"] == "error"
            assert error["message"].startswith("'pdu' must be hex octets")


async def test_control_help_lists_every_request(capsys: pytest.CaptureFixture[str]) -> None:
    ops = [
        "inject_mo",
        "burst",
        "delay_submit_responses",
        "redeliver_refused",
        "send_raw",
        "statistics",
        "help",
    ]
    with trio.fail_after(TIMEOUT):
        async with control_sim() as sim:
            assert sim.control_port is not None
            [answer] = await control_exchange(sim.control_port, {"op": "help"})
            assert answer["event"] == "help"
            assert list(answer["ops"]) == ops
            [unknown] = await control_exchange(sim.control_port, {"op": "nope"})
            assert unknown["message"] == f"unknown op 'nope' (ops: {', '.join(ops)})"
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert all(f"\n  {op} " in usage for op in ops)


async def test_control_command_prints_each_answer(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(TIMEOUT):
        async with control_sim_and_esme() as (_, port, _esme):
            address = f"127.0.0.1:{port}"
            request = '{"op": "burst", "n": 1, "source_addr": "84903000001", "text": "hi"}'
            assert await run_main(["control", "--control", address, request]) == 0
            sent, answered = (json.loads(line) for line in capsys.readouterr().out.splitlines())
            assert sent == {"event": "burst_sent", "n": 1, "written": True}
            assert answered["statuses"] == [0]
            assert await run_main(["control", "--control", address, '{"op": "nope"}']) == 1
            assert '"event": "error"' in capsys.readouterr().out
            assert await run_main(["control", "--control", address, "[1]"]) == 2
            assert capsys.readouterr().err == "the request must be a JSON object\n"
