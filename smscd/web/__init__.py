"""smscd.web: the daemon's HTTP listener (``/metrics``, ``/healthz``, the
operator's status page and ``/status.json``) and ``smscd status``.

The daemon owns a :class:`StatusBoard` (the warnings its log processor keeps,
the last hour sampled from its counters, the last 30 days from its store) and
implements :class:`StatusSource`; :func:`create_app` and :func:`serve_web` put
it on the listener. This package imports neither the daemon nor the store.
"""

from __future__ import annotations

from smscd.web._app import (
    StatusSource,
    create_app,
    is_loopback_host,
    serve_web,
)
from smscd.web._charts import Chart, DayActivity, MinuteHistory, Series
from smscd.web._client import StatusUnavailable, fetch_status, render_status
from smscd.web._events import EventLog, EventRecord
from smscd.web._snapshot import BindStatus, QueueStatus, StatusSnapshot, StoreStatus
from smscd.web._status import StatusBoard, run_sampler

__all__ = [
    "BindStatus",
    "Chart",
    "DayActivity",
    "EventLog",
    "EventRecord",
    "MinuteHistory",
    "QueueStatus",
    "Series",
    "StatusBoard",
    "StatusSnapshot",
    "StatusSource",
    "StatusUnavailable",
    "StoreStatus",
    "create_app",
    "fetch_status",
    "is_loopback_host",
    "render_status",
    "run_sampler",
    "serve_web",
]
