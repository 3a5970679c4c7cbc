"""The warnings sink: a structlog processor that keeps the last warnings and
errors for the status page.

:class:`EventLog` is placed after the masking processor: of each warning or
error it keeps the time, level, event, carrier, masked phone and a few short
fields that name a status or a reason, never free text, a message body or a
password.
"""

from __future__ import annotations

import collections
import re
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from smscd.web._dates import iso

if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

__all__ = ["EVENTS_KEPT", "EventLog", "EventRecord"]

#: Warnings and errors kept for the page.
EVENTS_KEPT: Final = 50


@attrs.frozen(kw_only=True)
class EventRecord:
    """One warning or error as the page lists it."""

    #: The log line's timestamp (ISO 8601, UTC).
    at: str
    level: str
    event: str
    carrier: str | None = None
    #: Masked (``0327xxx686``); None when the line named no phone.
    msisdn: str | None = None
    #: ``status=... reason=...``: short fields that say what went wrong.
    detail: str | None = None


_WARNING_LEVELS: Final = frozenset({"warning", "warn", "error", "critical", "exception", "fatal"})
_PHONE_KEYS: Final = ("msisdn", "source_addr", "destination_addr", "phone", "sender")
#: Fields copied into ``detail``: each holds a status name, a reason word or an
#: exception's class name or short message, never a body or a secret.
_DETAIL_KEYS: Final = ("status", "reason", "mode", "initiator", "error")
_DETAIL_MAX: Final = 120
#: Numbers long enough to be a phone number or a code (whole words: not the
#: digits of ``0x0000000b``), scrubbed from ``detail``.
_LONG_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{7,}(?![0-9A-Za-z])")


class EventLog:
    """A structlog processor that keeps the last warnings and errors.

    Place it after ``mask_fields``: phones arrive masked, and only values that
    look masked are kept. Thread-safe (database threads log too); it returns
    the event dict unchanged.
    """

    def __init__(self, size: int = EVENTS_KEPT) -> None:
        self._lock = threading.Lock()
        self._recent: collections.deque[EventRecord] = collections.deque(maxlen=size)
        self._last_by_carrier: dict[str, EventRecord] = {}

    def __call__(
        self, _logger: object, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        level = event_dict.get("level", method)
        if isinstance(level, str) and level in _WARNING_LEVELS:
            self.record(event_dict, level)
        return event_dict

    def record(self, event_dict: Mapping[str, Any], level: str) -> None:
        carrier = event_dict.get("carrier")
        record = EventRecord(
            at=str(event_dict.get("timestamp") or iso(datetime.now(UTC))),
            level="error" if level in ("exception", "critical", "fatal") else level,
            event=str(event_dict.get("event", "")),
            carrier=carrier if isinstance(carrier, str) else None,
            msisdn=_masked_phone(event_dict),
            detail=_detail(event_dict),
        )
        with self._lock:
            self._recent.append(record)
            if record.carrier is not None:
                self._last_by_carrier[record.carrier] = record

    def recent(self) -> tuple[EventRecord, ...]:
        """The records kept, newest first."""
        with self._lock:
            return tuple(reversed(self._recent))

    def last_for(self, carrier: str) -> EventRecord | None:
        """The last warning or error that named ``carrier`` (kept whatever
        other carriers logged since)."""
        with self._lock:
            return self._last_by_carrier.get(carrier)


def _masked_phone(event_dict: Mapping[str, Any]) -> str | None:
    for key in _PHONE_KEYS:
        value = event_dict.get(key)
        if isinstance(value, str) and "xxx" in value:
            return value
    return None


def _detail(event_dict: Mapping[str, Any]) -> str | None:
    parts = []
    for key in _DETAIL_KEYS:
        value = event_dict.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            parts.append(f"{key}={value}")
    if not parts:
        return None
    text = _LONG_NUMBER.sub("…", " ".join(parts))
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"
