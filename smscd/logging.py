"""structlog configuration: JSON lines for the journal, a console view for people,
and a last processor that guarantees what must never be logged is not (G3).

Masking is a processor, not a convention: whatever a call site binds under
``msisdn``, ``source_addr``, ``destination_addr`` or ``phone`` is masked as
``0327xxx686``; ``short_message``, ``text``, ``body``, ``password`` and anything
ending in ``password`` are dropped. Call sites should still bind masked values
(``msisdn=mask_msisdn(addr)``); the processor is the safety net.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from smscd.reset import mask_msisdn

if TYPE_CHECKING:
    from collections.abc import MutableMapping

__all__ = ["configure_logging", "mask_fields"]

_MASKED = frozenset({"msisdn", "source_addr", "destination_addr", "phone", "sender"})
_DROPPED = frozenset({"short_message", "text", "body", "reply_text", "password_hash"})


def mask_fields(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in _DROPPED or key.endswith("password"):
            del event_dict[key]
        elif key in _MASKED:
            value = event_dict[key]
            if isinstance(value, str) and "xxx" not in value:
                event_dict[key] = mask_msisdn(value)
    return event_dict


def configure_logging(
    *, format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process. ``format`` is json, console or auto
    (console on a terminal, JSON otherwise)."""
    out = stream if stream is not None else sys.stdout
    use_console = format == "console" or (format == "auto" and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
