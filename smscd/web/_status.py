"""The history the daemon keeps for its status page, and the snapshot it takes
of it: :class:`StatusBoard` holds the warnings (:class:`~smscd.web.EventLog`),
the last hour (:class:`~smscd.web.MinuteHistory`), the last 30 days from the
store and the bind losses per day; :func:`run_sampler` feeds it the counters.

Theory of operation
-------------------
The last hour is read from the daemon's counters, observed every few seconds
by :func:`run_sampler` and once more for every snapshot (see ``_charts``). The
last warnings come from the log, through the :class:`~smscd.web.EventLog`
processor (see ``_events``).

The last 30 days come from the store: the daemon asks the board which days to
read (:meth:`StatusBoard.daily_turn`), queries them and hands the rows over
(:meth:`StatusBoard.set_daily`). Past days hardly change (a pending MT charge
may still become final or void), so once a minute only yesterday and today are
read again, and the whole span once an hour: a store with a month of traffic
is not scanned every minute. Everything else is read live when a snapshot is
taken. This module does no I/O of its own.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

import attrs
import trio

from smscd.web._charts import DAYS, DayActivity, MinuteHistory, daily_charts
from smscd.web._dates import vietnam_day
from smscd.web._events import EventLog
from smscd.web._snapshot import QueueStatus, StatusSnapshot, StoreStatus, bind_status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from smscd.link import LinkStatistics

__all__ = ["StatusBoard", "run_sampler"]

#: Seconds between two observations of the counters by the sampler.
SAMPLE_S: Final = 5.0

#: The MO outcomes in the order the page stacks them, with their labels.
MO_SERIES: Final = (
    ("reset_ok", "reset"),
    ("mismatch", "mismatch"),
    ("invalid_code", "invalid code"),
    ("bad_syntax", "help"),
    ("rate_limited", "rate limited"),
    ("duplicate", "duplicate"),
    ("tempfail", "refused (store error)"),
)
REPLY_SERIES: Final = (("accepted", "accepted"), ("retry", "retried"), ("failed", "failed"))
RECEIPT_FIRST: Final = (("DELIVRD", "DELIVRD"),)


class _PerDay:
    """A counter's growth since the start of the (Vietnam) day, per key."""

    def __init__(self) -> None:
        self._base: dict[str, tuple[date, int]] = {}

    def today(self, key: str, value: int, now: datetime) -> int:
        day = vietnam_day(now)
        base = self._base.get(key)
        if base is None:
            base = (day, 0)  # counters start at zero with the daemon
        elif base[0] != day:
            base = (day, value)
        self._base[key] = base
        return value - base[1]


@attrs.define(eq=False)
class StatusBoard:
    """What the daemon keeps for its status page: the warnings, the last hour,
    the last 30 days from the store, and the bind losses per day."""

    events: EventLog = attrs.field(factory=EventLog)
    history: MinuteHistory = attrs.field(factory=MinuteHistory)
    #: Days of the store's chart; seconds between two reads of its last two
    #: days, and between two reads of all of them.
    days: int = DAYS
    daily_refresh_s: float = 60.0
    daily_full_refresh_s: float = 3600.0
    _daily: tuple[DayActivity, ...] = ()
    _daily_at: float | None = None
    _daily_full_at: float | None = None
    _daily_full_due: bool = True
    _disconnects: _PerDay = attrs.field(factory=_PerDay)

    def observe(
        self,
        now: datetime,
        totals: Mapping[tuple[str, str], float],
        links: Iterable[LinkStatistics],
    ) -> None:
        self.history.observe(now.timestamp(), totals)
        for stats in links:
            self._disconnects.today(stats.name, stats.disconnects, now)

    def daily_turn(self, now: datetime) -> date | None:
        """The first day the caller should read from the store now (through
        today), or None: all ``days`` once per ``daily_full_refresh_s``, else
        yesterday and today once per ``daily_refresh_s``. A turn is used up
        whether its read works or not; a failed read of all the days is tried
        again at the next turn."""
        clock = time.monotonic()
        if self._daily_at is not None and clock - self._daily_at < self.daily_refresh_s:
            return None
        self._daily_at = clock
        today = vietnam_day(now)
        self._daily_full_due = (
            self._daily_full_at is None or clock - self._daily_full_at >= self.daily_full_refresh_s
        )
        return today - timedelta(days=(self.days if self._daily_full_due else 2) - 1)

    def set_daily(self, start: date, rows: Iterable[DayActivity]) -> None:
        """The store's rows from ``start`` on, as ``daily_turn`` asked: they
        replace what was kept for those days."""
        if self._daily_full_due:
            self._daily_full_at = self._daily_at
        oldest = start if self._daily_full_due else start - timedelta(days=self.days)
        kept = tuple(row for row in self._daily if oldest <= row.day < start)
        self._daily = kept + tuple(rows)

    def snapshot(
        self,
        *,
        now: datetime,
        totals: Mapping[tuple[str, str], float],
        links: Sequence[LinkStatistics],
        queues: QueueStatus,
        store: StoreStatus,
    ) -> StatusSnapshot:
        self.observe(now, totals, links)
        binds = tuple(
            bind_status(
                stats,
                now=now,
                reconnects_today=self._disconnects.today(stats.name, stats.disconnects, now),
                last_error=self.events.last_for(stats.name),
            )
            for stats in links
        )
        moment = now.timestamp()
        charts = (
            self.history.chart(
                "mo",
                moment,
                key="mo",
                title="MOs by outcome",
                unit="MOs",
                series=MO_SERIES,
                others=True,
            ),
            self.history.chart(
                "mt",
                moment,
                key="replies",
                title="Replies",
                unit="replies",
                series=REPLY_SERIES,
                others=True,
            ),
            self.history.chart(
                "receipts",
                moment,
                key="receipts",
                title="Receipts by stat",
                unit="receipts",
                series=RECEIPT_FIRST,
                others=True,
            ),
            *daily_charts(
                self._daily,
                today=vietnam_day(now),
                carriers=[s.name for s in links],
                days=self.days,
            ),
        )
        return StatusSnapshot(
            generated_at=now,
            binds=binds,
            queues=queues,
            store=store,
            charts=charts,
            events=self.events.recent(),
        )


async def run_sampler(
    board: StatusBoard,
    totals: Callable[[], Mapping[tuple[str, str], float]],
    links: Callable[[], Sequence[LinkStatistics]],
    *,
    period: float = SAMPLE_S,
) -> None:
    """Observe the counters and links every ``period`` seconds, until cancelled."""
    while True:
        board.observe(datetime.now(UTC), totals(), links())
        await trio.sleep(period)
