"""The last logging processor masks phone numbers and drops message bodies and
passwords, whatever a call site binds."""

from __future__ import annotations

import io
import json

import structlog

from smscd.logging import configure_logging


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
