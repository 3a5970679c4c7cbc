"""The hypercorn settings of smscd's two HTTP listeners, the status page
(``smscd.web``) and the API's front process (``smscd.api.front``): no access
log (each request logs its own line), hypercorn's errors as structured
events, short keep-alive and read timeouts, a small limit on a request's
head, a second of grace at the end."""

from __future__ import annotations

import logging

import structlog
from hypercorn.config import Config as HypercornConfig

__all__ = ["hypercorn_config"]

log = structlog.get_logger("smscd.web")


class _ToStructlog(logging.Handler):
    """hypercorn's error log (an app that raised, a failed lifespan) as our
    structured events; its informational lines are dropped."""

    def emit(self, record: logging.LogRecord) -> None:
        log.error(
            "http_server_failed",
            message=record.getMessage(),
            exc_info=record.exc_info if record.exc_info else False,
        )


def _error_logger() -> logging.Logger:
    # Not registered with logging's manager: no process-global state.
    logger = logging.Logger("smscd.web.http", logging.WARNING)
    logger.addHandler(_ToStructlog(logging.WARNING))
    logger.propagate = False
    return logger


def hypercorn_config(listen: str) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = _error_logger()
    config.include_server_header = False
    config.keep_alive_timeout = 5.0
    config.read_timeout = 10
    config.graceful_timeout = 1.0
    config.h11_max_incomplete_size = 8 * 1024
    return config
