"""structlog configuration: JSON lines for the journal, a console view for people,
and a last processor that guarantees what must never be logged is not (G3).

Masking is a processor, not a convention: whatever a call site binds under
``msisdn``, ``source_addr``, ``destination_addr``, ``phone`` or ``sender`` is
masked by ``smscd.numbers.mask_msisdn`` (``0327xxx686`` for a Vietnamese
mobile; a short code or a sender name stays, anything else keeps only its last
3 characters); ``short_message``, ``text``, ``body``, ``password`` and anything
ending in ``password`` are dropped. Call sites should still bind masked values
(``msisdn=mask_msisdn(addr)``); the processor is the safety net.

Writing, theory of operation
----------------------------
A busy daemon logs a few lines per message, thousands a second. Written one
``write`` + ``flush`` each (structlog's ``PrintLogger``), every line is a
syscall on the event loop's thread, and every syscall releases the GIL, which a
database thread then holds for up to a switch interval: the event loop stalls
far longer than the write takes. So lines go to a :class:`LineBuffer` instead:
a call appends the rendered line to a list (no syscall), and a small daemon
thread writes whatever has gathered, in order and in one ``write`` + ``flush``,
at most ``FLUSH_DELAY`` seconds after the first line of the batch. A batch that
reaches ``MAX_PENDING`` lines is written at once by the logging thread itself
(backpressure when the stream cannot keep up). Every line still appears within
``FLUSH_DELAY``; at a clean exit (``atexit``) and on :func:`flush_logs` the rest
is written. Only a ``kill -9`` (or a crash of the interpreter itself) can lose
the last ``FLUSH_DELAY`` of lines. This module uses ``threading`` only: no trio.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Final, TextIO

import structlog

from smscd.numbers import mask_msisdn

if TYPE_CHECKING:
    from collections.abc import MutableMapping

__all__ = [
    "FLUSH_DELAY",
    "LineBuffer",
    "add_timestamp",
    "configure_logging",
    "flush_logs",
    "mask_fields",
]

_MASKED = frozenset({"msisdn", "source_addr", "destination_addr", "phone", "sender"})
_DROPPED = frozenset({"short_message", "text", "body", "reply_text", "password_hash"})

#: Longest time a logged line waits before it is written.
FLUSH_DELAY: Final = 0.1
#: Lines pending at which the logging thread writes them itself.
MAX_PENDING: Final = 4096


_KEEP, _DROP, _MASK = 0, 1, 2
#: What mask_fields does with each key seen so far (keys are a small fixed set
#: of names; the cache is bounded all the same).
_KEY_ACTIONS: dict[str, int] = {}


def _key_action(key: str) -> int:
    action = _KEY_ACTIONS.get(key)
    if action is None:
        if key in _DROPPED or key.endswith("password"):
            action = _DROP
        elif key in _MASKED:
            action = _MASK
        else:
            action = _KEEP
        if len(_KEY_ACTIONS) < 4096:
            _KEY_ACTIONS[key] = action
    return action


def mask_fields(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        action = _key_action(key)
        if action == _DROP:
            del event_dict[key]
        elif action == _MASK:
            # mask_msisdn is idempotent: a value a call site masked already
            # stays as it is, and a raw one is masked whatever it contains.
            value = event_dict[key]
            if isinstance(value, str):
                event_dict[key] = mask_msisdn(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                event_dict[key] = mask_msisdn(str(value))
    return event_dict


#: (whole second, its "YYYY-MM-DDTHH:MM:SS" in UTC), shared by every thread.
_second_cache: tuple[int, str] = (-1, "")


def add_timestamp(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """``timestamp``: ISO 8601 UTC with microseconds (``2021-10-15T12:30:00.123456Z``),
    as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it, at a fraction of
    its cost (the date part is formatted once a second)."""
    global _second_cache
    now = time.time()
    second = int(now)
    cached_second, prefix = _second_cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
    event_dict["timestamp"] = f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
    return event_dict


class LineBuffer:
    """Rendered log lines on their way to one text stream (see the module docstring).

    Thread-safe: any thread may log. Write errors (a closed stream, a broken pipe)
    drop the batch; logging never raises into the caller.
    """

    def __init__(
        self, stream: TextIO, *, delay: float = FLUSH_DELAY, max_pending: int = MAX_PENDING
    ) -> None:
        self.stream = stream
        self._delay = delay
        self._max_pending = max_pending
        self._pending: list[str] = []
        #: Guards ``_pending`` (held for an append or a swap, never for I/O).
        self._lock = threading.Lock()
        #: Held while a batch is taken and written, so batches keep their order.
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="smscd-log-flusher", daemon=True)
        self._thread.start()

    def write_line(self, line: str) -> None:
        with self._lock:
            pending = self._pending
            pending.append(line)
            count = len(pending)
        if count == 1:
            self._wake.set()  # the first line of a batch starts the clock
        elif count >= self._max_pending:
            self.flush()

    def flush(self) -> None:
        """Write every pending line now (in the calling thread)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self.stream.write("\n".join(batch) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed stream or a broken pipe: nowhere to log to

    def close(self) -> None:
        """Write what is pending and stop the flusher thread."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=max(1.0, 10 * self._delay))
        self.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closed:
                return
            self._wake.clear()
            if self._delay > 0:
                time.sleep(self._delay)
            self.flush()


class _BufferedLogger:
    """The structlog logger writing rendered lines into a :class:`LineBuffer`."""

    def __init__(self, buffer: LineBuffer) -> None:
        self._write_line = buffer.write_line

    def msg(self, message: str) -> None:
        self._write_line(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _BufferedLoggerFactory:
    def __init__(self, buffer: LineBuffer) -> None:
        self._logger = _BufferedLogger(buffer)

    def __call__(self, *_args: Any) -> _BufferedLogger:
        return self._logger


def _json_fallback(obj: Any) -> Any:
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


#: One encoder for every line: ``json.dumps(..., default=...)`` would build a new
#: encoder per call.
_json_encode = json.JSONEncoder(default=_json_fallback).encode


def _render_json(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    return _json_encode(event_dict)


_buffer: LineBuffer | None = None
_buffer_lock = threading.Lock()


def flush_logs() -> None:
    """Write every log line still pending (tests, and before the process ends)."""
    buffer = _buffer
    if buffer is not None:
        buffer.flush()


atexit.register(flush_logs)


def _use_buffer(out: TextIO) -> LineBuffer:
    global _buffer
    with _buffer_lock:
        old = _buffer
        if old is not None:
            old.close()
        _buffer = LineBuffer(out)
        return _buffer


def configure_logging(
    *,
    format: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    sink: structlog.typing.Processor | None = None,
) -> None:
    """Configure structlog for the process. ``format`` is json, console or auto
    (console on a terminal, JSON otherwise). Lines reach ``stream`` (stdout by
    default) within ``FLUSH_DELAY`` seconds, or at once with :func:`flush_logs`.
    ``sink`` is a processor that sees every event after the masking (the
    status page's last warnings) and returns it unchanged."""
    out = stream if stream is not None else sys.stdout
    use_console = format == "console" or (format == "auto" and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty()) if use_console else _render_json
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_timestamp,
            structlog.processors.format_exc_info,
            mask_fields,
            *([sink] if sink is not None else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_BufferedLoggerFactory(_use_buffer(out)),
        cache_logger_on_first_use=True,
    )
