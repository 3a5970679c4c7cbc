"""Rate limits and hash cost: the ``[reset]`` table, and Vietnam-time windows.

Day and month windows are counted in Vietnam time (UTC+7 all year, no daylight
saving time since 1975): a subscriber's "three resets a day" starts at local
midnight, i.e. 17:00 UTC the day before.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import attrs

from smscd.reset._password import HashParams

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["VIETNAM_TZ", "ResetPolicy", "window_starts"]

#: Indochina Time, the civil time of Vietnam.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")

_KEYS = (
    "rate_limit_per_day",
    "rate_limit_per_month",
    "duplicate_window",
    "hash_memory_kib",
    "hash_time_cost",
    "hash_parallelism",
)

#: The largest value ``from_mapping`` takes for each key: far above any sane
#: setting, low enough that a typo (an extra zero or three) is refused.
_MAXIMA: Mapping[str, int] = {
    "rate_limit_per_day": 1000,
    "rate_limit_per_month": 10_000,
    "duplicate_window": 86_400,  # seconds: a day
    "hash_memory_kib": 1024 * 1024,  # 1 GiB per hash
    "hash_time_cost": 100,
    "hash_parallelism": 64,
}


def _key_path(source: str, key: str) -> str:
    table = source[1:-1] if source.startswith("[") and source.endswith("]") else source
    return f"{table}.{key}"


def _positive_int(source: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{_key_path(source, key)}: must be a positive integer")
    return value


def _window(source: str, key: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{_key_path(source, key)}: must be a number of seconds >= 0")
    return float(value)


def _at_most(source: str, key: str, value: float) -> None:
    maximum = _MAXIMA[key]
    if value > maximum:
        raise ValueError(f"{_key_path(source, key)}: must be at most {maximum} (got {value!r})")


def _check_order(source: str, per_day: int, per_month: int) -> None:
    if per_day > per_month:
        raise ValueError(
            f"{_key_path(source, 'rate_limit_per_day')}: must not exceed"
            f" rate_limit_per_month ({per_day} > {per_month})"
        )


#: Seconds within which an identical MO is a redelivery (``[reset] duplicate_window``).
DEFAULT_DUPLICATE_WINDOW = 1800.0


@attrs.frozen(kw_only=True)
class ResetPolicy:
    """Limits on successful resets per phone and per code, and the hash cost.

    ``duplicate_window`` is used by the intake (an identical MO within it is a
    redelivery, unless the reply of the first one failed for good or expired),
    not by the pipeline; it lives here because it is in ``[reset]``. Its
    default covers a carrier's usual redelivery schedule (tens of minutes).
    """

    rate_limit_per_day: int = 3
    rate_limit_per_month: int = 10
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    hash: HashParams = attrs.field(factory=HashParams)

    def __attrs_post_init__(self) -> None:
        source = "[reset]"
        _positive_int(source, "rate_limit_per_day", self.rate_limit_per_day)
        _positive_int(source, "rate_limit_per_month", self.rate_limit_per_month)
        _check_order(source, self.rate_limit_per_day, self.rate_limit_per_month)
        _window(source, "duplicate_window", self.duplicate_window)
        if not isinstance(self.hash, HashParams):
            raise ValueError(f"{_key_path(source, 'hash')}: must be HashParams")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], *, source: str = "[reset]") -> ResetPolicy:
        """The defaults with a ``[reset]`` table applied; ValueError naming the key
        (``reset.rate_limit_per_day: must be a positive integer``). ``source`` is
        the table as written in the config, or any prefix the caller prefers."""
        for key in mapping:
            if key not in _KEYS:
                raise ValueError(
                    f"{_key_path(source, str(key))}: unknown key (known: {', '.join(_KEYS)})"
                )
        defaults = cls()

        def positive(key: str, default: int) -> int:
            value = _positive_int(source, key, mapping.get(key, default))
            _at_most(source, key, value)
            return value

        memory_kib = positive("hash_memory_kib", defaults.hash.memory_kib)
        time_cost = positive("hash_time_cost", defaults.hash.time_cost)
        parallelism = positive("hash_parallelism", defaults.hash.parallelism)
        if memory_kib < 8 * parallelism:
            raise ValueError(
                f"{_key_path(source, 'hash_memory_kib')}: must be at least 8 times"
                f" hash_parallelism ({memory_kib} < {8 * parallelism})"
            )
        per_day = positive("rate_limit_per_day", defaults.rate_limit_per_day)
        per_month = positive("rate_limit_per_month", defaults.rate_limit_per_month)
        _check_order(source, per_day, per_month)
        window = _window(
            source, "duplicate_window", mapping.get("duplicate_window", DEFAULT_DUPLICATE_WINDOW)
        )
        _at_most(source, "duplicate_window", window)
        return cls(
            rate_limit_per_day=per_day,
            rate_limit_per_month=per_month,
            duplicate_window=window,
            hash=HashParams(memory_kib=memory_kib, time_cost=time_cost, parallelism=parallelism),
        )


def window_starts(now: datetime) -> tuple[datetime, datetime]:
    """(start of the local day, start of the local month) of ``now``, in UTC."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(VIETNAM_TZ)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return day.astimezone(UTC), month.astimezone(UTC)
