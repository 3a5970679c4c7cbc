"""``make run``'s program (``python -m smscd.demo``) as a newcomer runs it: from
a checkout's ``conf/``, as a real process group, until Ctrl-C. It must show
each exchange with its exact reply, and Ctrl-C (SIGINT to the whole group,
the daemon included) must end it cleanly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

from tests.integration.daemon_harness import free_port

CONF = Path(__file__).resolve().parents[2] / "conf"

OK_REPLY = re.compile(
    r"reply to 84327000686: 'Cap lai mat khau thanh cong\. Tai khoan: 0123456789/Mat khau: \d{6}'"
)
MISMATCH_REPLY = (
    "reply to 84911222333: 'So dien thoai va ma so BHXH khong khop hoac chua dang ky"
    " giao dich dien tu voi co quan BHXH'"
)
HELP_REPLY = (
    "reply to 84327000686: 'Tin nhan sai cu phap. De lay lai mat khau VssID, soan tin:"
    " BH MK <Ma so BHXH> gui 8079'"
)


def _two_free_ports() -> int:
    """A port whose next one is free too (the simulator's control port)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row")


def _checkout(directory: Path) -> None:
    """``conf/`` as shipped, with the SMSC and metrics ports moved to free ones."""
    conf = directory / "conf"
    conf.mkdir()
    for name in ("demo-accounts.csv", "simulator.password"):
        shutil.copy(CONF / name, conf / name)
    text = (CONF / "smscd.toml").read_text()
    assert "port = 2775\n" in text and '"127.0.0.1:9108"' in text
    text = text.replace("port = 2775\n", f"port = {_two_free_ports()}\n")
    text = text.replace('"127.0.0.1:9108"', f'"127.0.0.1:{free_port()}"')
    (conf / "smscd.toml").write_text(text)


async def test_make_run_shows_each_exchange_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    _checkout(tmp_path)
    output = tmp_path / "output.txt"
    env = {k: v for k, v in os.environ.items() if k != "SMSCD_CONFIG"}
    with output.open("wb") as out:
        demo = await trio.lowlevel.open_process(
            [sys.executable, "-m", "smscd.demo"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with trio.fail_after(60):
            while "Ctrl-C to stop" not in output.read_text():
                assert demo.poll() is None, output.read_text()
                await trio.sleep(0.1)
        shown = output.read_text()
        assert shown.count("deliver_sm_resp status 0x00000000") == 3
        assert OK_REPLY.search(shown), shown
        assert MISMATCH_REPLY in shown
        assert HELP_REPLY in shown

        os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        with trio.fail_after(20):
            await demo.wait()
        shown = output.read_text()
        assert demo.returncode == 0, shown
        assert '"daemon_stopped"' in shown
        assert "Traceback" not in shown
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await demo.wait()
