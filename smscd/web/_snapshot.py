"""What the status page shows, as values: one snapshot of the daemon (its
binds, queues, store, charts and last warnings) and its JSON document."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from smscd.web._dates import iso

if TYPE_CHECKING:
    from smscd.link import LinkStatistics
    from smscd.web._charts import Chart
    from smscd.web._events import EventRecord

__all__ = [
    "THROTTLE_SHOWN_S",
    "BindStatus",
    "QueueStatus",
    "StatusSnapshot",
    "StoreStatus",
    "bind_status",
]

#: A bound link that began a throttle pause this recently shows as throttled.
THROTTLE_SHOWN_S: Final = 10.0


@attrs.frozen(kw_only=True)
class BindStatus:
    carrier: str
    #: "bound", "throttled" (bound, paused by the SMSC lately), "reconnecting",
    #: "stopping" or "stopped".
    state: str
    since: datetime
    #: Binds lost today (Vietnam day), each followed by a reconnect.
    reconnects_today: int
    in_flight: int
    window: int
    #: submit_sm per second at most (0: no cap).
    submit_cap: float
    last_error: EventRecord | None

    @property
    def up(self) -> bool:
        return self.state in ("bound", "throttled")


@attrs.frozen(kw_only=True)
class QueueStatus:
    #: Replies queued, not yet accepted by an SMSC.
    outbox_depth: int
    #: Age of the oldest of them, seconds (None: the outbox is empty or unknown).
    outbox_oldest_s: float | None
    #: Passwords waiting for a hashing process.
    hashing_queue: int
    #: MOs and receipts read from the SMSCs and not yet committed.
    intake_backlog: int


@attrs.frozen(kw_only=True)
class StoreStatus:
    ok: bool
    #: Why not (None when ok).
    error: str | None = None


@attrs.frozen(kw_only=True)
class StatusSnapshot:
    generated_at: datetime
    binds: tuple[BindStatus, ...]
    queues: QueueStatus
    store: StoreStatus
    #: The last hour per minute (MOs, replies, receipts), then the last 30 days.
    charts: tuple[Chart, ...]
    #: The last warnings and errors, newest first.
    events: tuple[EventRecord, ...]

    @property
    def healthy(self) -> bool:
        """Every bind up and the store answering (what /healthz says)."""
        return self.store.ok and all(bind.up for bind in self.binds)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``/status.json``: every field, datetimes as
        :func:`iso` (written out: ``attrs.asdict`` visits each of the charts'
        values, a few times dearer for what a page asks every few seconds)."""
        return {
            "version": 1,
            "healthy": self.healthy,
            "generated_at": iso(self.generated_at),
            "binds": [
                {
                    **attrs.asdict(bind, recurse=False),
                    "since": iso(bind.since),
                    "last_error": _event(bind.last_error),
                }
                for bind in self.binds
            ],
            "queues": attrs.asdict(self.queues),
            "store": attrs.asdict(self.store),
            "charts": [
                {
                    **attrs.asdict(chart, recurse=False),
                    "starts": list(chart.starts),
                    "series": [
                        {"name": s.name, "label": s.label, "values": list(s.values)}
                        for s in chart.series
                    ],
                }
                for chart in self.charts
            ],
            "events": [_event(event) for event in self.events],
        }


def _event(record: EventRecord | None) -> dict[str, Any] | None:
    return None if record is None else attrs.asdict(record)


def bind_status(
    stats: LinkStatistics,
    *,
    now: datetime,
    reconnects_today: int,
    last_error: EventRecord | None,
) -> BindStatus:
    """How the page shows one link."""
    age = stats.state_age
    if stats.state in ("stopping", "stopped"):
        state = stats.state
    elif not stats.bound:
        state = "reconnecting"
    elif stats.throttled_ago is not None and stats.throttled_ago < THROTTLE_SHOWN_S:
        state = "throttled"
        age = min(age, stats.throttled_ago)
    else:
        state = "bound"
    return BindStatus(
        carrier=stats.name,
        state=state,
        since=now - timedelta(seconds=age),
        reconnects_today=reconnects_today,
        in_flight=stats.in_flight,
        window=stats.window,
        submit_cap=stats.throughput,
        last_error=last_error,
    )
