"""The status page's charts: the last hour per minute, from the daemon's
counters, and the last 30 days per carrier, from the store's rows.

Theory of operation
-------------------
The last hour is read from the daemon's own Prometheus counters, not counted
again at its counting sites: :meth:`MinuteHistory.observe` is given the
counters' totals (every few seconds by the sampler, and once more for every
snapshot) and adds what each one grew since the previous observation to the
minute it is in. So the page agrees with ``/metrics`` by construction, and a
minute nobody watched is counted all the same.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

import attrs

from smscd.web._dates import iso

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DAYS",
    "MINUTES",
    "Chart",
    "DayActivity",
    "MinuteHistory",
    "Series",
    "Totals",
    "daily_charts",
]

#: Minutes of history (the last hour) and days from the store.
MINUTES: Final = 60
DAYS: Final = 30

#: A counter's samples, keyed by (family, label value): ("mo", "reset_ok").
Totals = dict[tuple[str, str], float]


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
