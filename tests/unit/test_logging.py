"""The last logging processor masks phone numbers and drops message bodies and
passwords, whatever a call site binds; lines are written in batches, yet every
one appears within FLUSH_DELAY, on flush_logs() and at a clean exit."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import structlog

from smscd.logging import FLUSH_DELAY, LineBuffer, configure_logging, flush_logs


def test_json_lines_mask_numbers_and_drop_secrets() -> None:
    stream = io.StringIO()
    configure_logging(format="json", level="info", stream=stream)
    try:
        log = structlog.get_logger("test")
        log.info(
            "mo_received",
            msisdn="84327000686",
            source_addr="0327000686",
            short_message=b"BH MK 0123456789",
            body="Mat khau: 123456",
            bind_password="s3cr3t",
            mo_id=7,
        )
        log.debug("not_shown")
        flush_logs()
    finally:
        structlog.reset_defaults()
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "mo_received"
    assert event["msisdn"] == "0327xxx686"
    assert event["source_addr"] == "0327xxx686"
    assert event["mo_id"] == 7
    assert event["level"] == "info"
    for key in ("short_message", "body", "bind_password"):
        assert key not in event
    assert "123456" not in line and "s3cr3t" not in line


def test_every_phone_field_is_masked_by_the_one_rule() -> None:
    stream = io.StringIO()
    configure_logging(format="json", level="info", stream=stream)
    try:
        structlog.get_logger("test").info(
            "receipt_received",
            msisdn="01627000686",  # the pre-2018 form of 0327000686
            destination_addr="8079",  # a short code: shown as it is
            source_addr="0327000686 xxx",  # raw, though it contains "xxx"
            phone=84327000686,  # not even a string
            sender="0327xxx686",  # masked by the call site already
        )
        flush_logs()
    finally:
        structlog.reset_defaults()
    line = stream.getvalue()
    event = json.loads(line)
    assert event["msisdn"] == "0327xxx686"
    assert event["destination_addr"] == "8079"
    assert event["source_addr"] == "xxxxxx"
    assert event["phone"] == "0327xxx686"
    assert event["sender"] == "0327xxx686"
    assert "000686" not in line and "7000" not in line


def test_odd_values_are_rendered_not_raised() -> None:
    stream = io.StringIO()
    configure_logging(format="json", level="info", stream=stream)
    try:
        structlog.get_logger("test").info("odd", value=b"\x01", when=object)
        flush_logs()
    finally:
        structlog.reset_defaults()
    event = json.loads(stream.getvalue())
    assert event["value"] == "b'\\x01'"
    assert event["when"] == "<class 'object'>"


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_lines_are_written_in_batches_within_the_delay() -> None:
    stream = _CountingStream()
    buffer = LineBuffer(stream)
    try:
        start = time.monotonic()
        for i in range(500):
            buffer.write_line(f"line {i}")
        assert stream.getvalue() == ""  # nothing written by the logging thread itself
        while stream.getvalue().count("\n") < 500:
            assert time.monotonic() - start < 5 * FLUSH_DELAY + 1.0
            time.sleep(0.01)
        assert stream.getvalue().splitlines() == [f"line {i}" for i in range(500)]
        assert stream.writes <= 3
        # A quiet buffer still writes its one line.
        buffer.write_line("alone")
        deadline = time.monotonic() + 5 * FLUSH_DELAY + 1.0
        while not stream.getvalue().endswith("alone\n"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        buffer.close()


def test_many_threads_lose_and_tear_no_line() -> None:
    stream = io.StringIO()
    buffer = LineBuffer(stream, max_pending=64)

    def write(n: int) -> None:
        for i in range(300):
            buffer.write_line(f"{n}:{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    buffer.close()
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == sorted(f"{n}:{i}" for n in range(4) for i in range(300))
    for n in range(4):  # each thread's lines in its own order
        assert [x for x in lines if x.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(300)]


def test_a_closed_stream_drops_lines_without_raising() -> None:
    stream = io.StringIO()
    buffer = LineBuffer(stream, max_pending=2)
    stream.close()
    buffer.write_line("a")
    buffer.write_line("b")  # written at once (max_pending): fails quietly
    buffer.close()


def test_pending_lines_are_written_at_a_clean_exit() -> None:
    program = (
        "import structlog\n"
        "from smscd.logging import configure_logging\n"
        "configure_logging(format='json', level='info')\n"
        "log = structlog.get_logger()\n"
        "for i in range(1000):\n"
        "    log.info('exit_line', n=i)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1000
    assert json.loads(lines[-1])["n"] == 999


def test_timestamps_are_iso_utc_with_microseconds() -> None:
    stream = io.StringIO()
    configure_logging(format="json", level="info", stream=stream)
    try:
        before = datetime.now(UTC)
        log = structlog.get_logger("test")
        for _ in range(3):
            log.info("tick")
        flush_logs()
        after = datetime.now(UTC)
    finally:
        structlog.reset_defaults()
    stamps = [json.loads(line)["timestamp"] for line in stream.getvalue().splitlines()]
    assert len(stamps) == 3
    for stamp in stamps:
        assert len(stamp) == len("2021-10-15T12:30:00.123456Z") and stamp.endswith("Z")
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(stamp) <= after
    assert stamps == sorted(stamps)
