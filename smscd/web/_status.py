"""What the status page shows, as values: one snapshot of the daemon, and the
history the daemon keeps for it.

Theory of operation
-------------------
The last hour is read from the daemon's own Prometheus counters, not counted
again at its counting sites: :meth:`MinuteHistory.observe` is given the
counters' totals (every few seconds by :func:`run_sampler`, and once more for
every snapshot) and adds what each one grew since the previous observation to
the minute it is in. So the page agrees with ``/metrics`` by construction, and
a minute nobody watched is counted all the same.

The last warnings come from a structlog processor, :class:`EventLog`, placed
after the masking processor: of each warning or error it keeps the time, level,
event, carrier, masked phone and a few short fields that name a status or a
reason, never free text, a message body or a password.

The last 30 days come from the store: the daemon asks the board which days to
read (:meth:`StatusBoard.daily_turn`), queries them and hands the rows over
(:meth:`StatusBoard.set_daily`). Past days hardly change (a pending MT charge
may still become final or void), so once a minute only yesterday and today are
read again, and the whole span once an hour: a store with a month of traffic
is not scanned every minute. Everything else is read live when a snapshot is
taken. This module does no I/O of its own.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from smscd.reset import VIETNAM_TZ

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence

    from smscd.link import LinkStatistics

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
    "StoreStatus",
    "run_sampler",
]

#: Seconds between two observations of the counters by the sampler.
SAMPLE_S: Final = 5.0
#: A bound link that began a throttle pause this recently shows as throttled.
THROTTLE_SHOWN_S: Final = 10.0
#: Warnings and errors kept for the page.
EVENTS_KEPT: Final = 50
#: Minutes of history (the last hour) and days from the store.
MINUTES: Final = 60
DAYS: Final = 30

#: A counter's samples, keyed by (family, label value): ("mo", "reset_ok").
Totals = dict[tuple[str, str], float]

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


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC to the second: ``2021-10-15T05:30:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vietnam_day(moment: datetime) -> date:
    """The Vietnam (UTC+7) day of ``moment``: the day of the store's reports."""
    return moment.astimezone(VIETNAM_TZ).date()


# --- warnings and errors ---------------------------------------------------------------


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


# --- charts ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Series:
    name: str
    label: str
    values: tuple[int, ...]


@attrs.frozen(kw_only=True)
class Chart:
    """Stacked bars: one value per step and series."""

    key: str
    title: str
    #: What a value counts ("MOs", "VND").
    unit: str
    #: "minute" or "day".
    step: str
    #: The start of each step: ISO 8601 UTC minutes, or Vietnam days (YYYY-MM-DD).
    starts: tuple[str, ...]
    series: tuple[Series, ...]


class MinuteHistory:
    """Per-minute growth of counters over the last ``minutes`` (see the
    module docstring). Not thread-safe: the event loop's alone."""

    def __init__(self, minutes: int = MINUTES) -> None:
        self._minutes = minutes
        self._last: Totals = {}
        self._buckets: dict[int, dict[tuple[str, str], float]] = {}
        #: The last minute charted and the starts of its hour.
        self._starts: tuple[int, tuple[str, ...]] = (-1, ())

    def observe(self, now: float, totals: Mapping[tuple[str, str], float]) -> None:
        """Counters' totals at ``now`` (seconds since the epoch). The first
        observation counts from zero: the counters start with the daemon."""
        minute = int(now // 60)
        bucket = self._buckets.get(minute)
        for key, total in totals.items():
            delta = total - self._last.get(key, 0.0)
            if delta > 0:
                if bucket is None:
                    bucket = self._buckets[minute] = {}
                bucket[key] = bucket.get(key, 0.0) + delta
            self._last[key] = total
        for old in [m for m in self._buckets if m <= minute - self._minutes]:
            del self._buckets[old]

    def _starts_until(self, last: int) -> tuple[str, ...]:
        if self._starts[0] != last:
            first = last - self._minutes + 1
            starts = tuple(iso(datetime.fromtimestamp(m * 60, UTC)) for m in range(first, last + 1))
            self._starts = (last, starts)
        return self._starts[1]

    def chart(
        self,
        family: str,
        now: float,
        *,
        key: str,
        title: str,
        unit: str,
        series: Sequence[tuple[str, str]],
        others: bool = False,
    ) -> Chart:
        """The chart of one family: ``series`` (name, label) always, in that
        order; with ``others``, then every other name the family has in the
        hour, sorted."""
        last = int(now // 60)
        minutes = range(last - self._minutes + 1, last + 1)
        names = list(series)
        if others:
            known = {name for name, _label in series}
            seen = {
                name
                for bucket in self._buckets.values()
                for fam, name in bucket
                if fam == family and name not in known
            }
            names += [(name, name) for name in sorted(seen)]
        empty: dict[tuple[str, str], float] = {}
        return Chart(
            key=key,
            title=title,
            unit=unit,
            step="minute",
            starts=self._starts_until(last),
            series=tuple(
                Series(
                    name=name,
                    label=label,
                    values=tuple(
                        round(self._buckets.get(m, empty).get((family, name), 0.0)) for m in minutes
                    ),
                )
                for name, label in names
            ),
        )


@attrs.frozen(kw_only=True)
class DayActivity:
    """One Vietnam day and carrier of the store: resets and charges."""

    day: date
    carrier: str
    #: MOs answered with a new password.
    resets: int
    #: Charges final or pending (not voided), VND.
    charges_vnd: int


def daily_charts(
    rows: Iterable[DayActivity], *, today: date, carriers: Sequence[str], days: int = DAYS
) -> tuple[Chart, Chart]:
    """Resets and charges per day (the last ``days`` up to ``today``), a series
    per carrier (the configured ones first, then any other the store names)."""
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    index = {day: i for i, day in enumerate(span)}
    resets: dict[str, list[int]] = {c: [0] * days for c in carriers}
    charges: dict[str, list[int]] = {c: [0] * days for c in carriers}
    for row in rows:
        i = index.get(row.day)
        if i is None:
            continue
        resets.setdefault(row.carrier, [0] * days)[i] += row.resets
        charges.setdefault(row.carrier, [0] * days)[i] += row.charges_vnd
    starts = tuple(day.isoformat() for day in span)

    def chart(key: str, title: str, unit: str, values: dict[str, list[int]]) -> Chart:
        return Chart(
            key=key,
            title=title,
            unit=unit,
            step="day",
            starts=starts,
            series=tuple(Series(name=c, label=c, values=tuple(v)) for c, v in values.items()),
        )

    return (
        chart("resets_daily", "Resets per day, by carrier", "resets", resets),
        chart("charges_daily", "Charges per day, by carrier (VND)", "VND", charges),
    )


# --- the snapshot ----------------------------------------------------------------------


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
