"""The [reset] table and the Vietnam-time windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from smscd.reset import VIETNAM_TZ, HashParams, ResetPolicy, window_starts


def test_defaults() -> None:
    policy = ResetPolicy()
    assert policy.rate_limit_per_day == 3
    assert policy.rate_limit_per_month == 10
    assert policy.duplicate_window == 1800.0
    assert policy.hash == HashParams(memory_kib=19456, time_cost=2, parallelism=1)
    assert ResetPolicy.from_mapping({}) == policy


def test_from_mapping() -> None:
    policy = ResetPolicy.from_mapping(
        {
            "rate_limit_per_day": 5,
            "rate_limit_per_month": 20,
            "duplicate_window": 60,
            "hash_memory_kib": 65536,
            "hash_time_cost": 3,
            "hash_parallelism": 2,
        }
    )
    assert policy == ResetPolicy(
        rate_limit_per_day=5,
        rate_limit_per_month=20,
        duplicate_window=60.0,
        hash=HashParams(memory_kib=65536, time_cost=3, parallelism=2),
    )
    assert isinstance(policy.duplicate_window, float)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"rate_limit_per_day": 0}, "reset.rate_limit_per_day: must be a positive integer"),
        ({"rate_limit_per_day": -1}, "reset.rate_limit_per_day: must be a positive integer"),
        ({"rate_limit_per_day": 2.5}, "reset.rate_limit_per_day: must be a positive integer"),
        ({"rate_limit_per_day": "3"}, "reset.rate_limit_per_day: must be a positive integer"),
        ({"rate_limit_per_day": True}, "reset.rate_limit_per_day: must be a positive integer"),
        ({"rate_limit_per_month": 0}, "reset.rate_limit_per_month: must be a positive integer"),
        (
            {"rate_limit_per_day": 11},
            "reset.rate_limit_per_day: must not exceed rate_limit_per_month (11 > 10)",
        ),
        (
            {"rate_limit_per_day": 3, "rate_limit_per_month": 2},
            "reset.rate_limit_per_day: must not exceed rate_limit_per_month (3 > 2)",
        ),
        ({"duplicate_window": -1}, "reset.duplicate_window: must be a number of seconds >= 0"),
        (
            {"duplicate_window": float("nan")},
            "reset.duplicate_window: must be a number of seconds >= 0",
        ),
        ({"duplicate_window": "2m"}, "reset.duplicate_window: must be a number of seconds >= 0"),
        ({"hash_memory_kib": 0}, "reset.hash_memory_kib: must be a positive integer"),
        ({"hash_time_cost": 0}, "reset.hash_time_cost: must be a positive integer"),
        ({"hash_parallelism": 1.0}, "reset.hash_parallelism: must be a positive integer"),
        (
            {"hash_memory_kib": 8, "hash_parallelism": 2},
            "reset.hash_memory_kib: must be at least 8 times hash_parallelism (8 < 16)",
        ),
        (
            {"rate_limit": 3},
            "reset.rate_limit: unknown key (known: rate_limit_per_day, rate_limit_per_month,"
            " duplicate_window, hash_memory_kib, hash_time_cost, hash_parallelism)",
        ),
    ],
)
def test_bad_values_name_the_key(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=r"^reset\.") as info:
        ResetPolicy.from_mapping(mapping)
    assert str(info.value) == message


def test_the_source_prefixes_the_key() -> None:
    with pytest.raises(ValueError, match=r"^smscd\.toml: reset\.") as info:
        ResetPolicy.from_mapping({"rate_limit_per_day": 0}, source="smscd.toml: reset")
    assert str(info.value) == "smscd.toml: reset.rate_limit_per_day: must be a positive integer"


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^reset\.rate_limit_per_month: must be a positive"):
        ResetPolicy(rate_limit_per_month=0)
    with pytest.raises(ValueError, match="must not exceed"):
        ResetPolicy(rate_limit_per_day=4, rate_limit_per_month=3)
    with pytest.raises(ValueError, match=r"^time_cost: must be a positive integer$"):
        HashParams(time_cost=0)
    with pytest.raises(ValueError, match=r"^memory_kib: must be at least 8 times parallelism$"):
        HashParams(memory_kib=15, parallelism=2)


def test_vietnam_is_utc_plus_7_all_year() -> None:
    assert VIETNAM_TZ.utcoffset(datetime(2021, 1, 1)) == timedelta(hours=7)
    assert VIETNAM_TZ.utcoffset(datetime(2021, 7, 1)) == timedelta(hours=7)


@pytest.mark.parametrize(
    ("now", "day", "month"),
    [
        # 10:00 on 5 Oct in Hanoi
        (
            datetime(2021, 10, 5, 3, 0, tzinfo=UTC),
            datetime(2021, 10, 4, 17, 0, tzinfo=UTC),
            datetime(2021, 9, 30, 17, 0, tzinfo=UTC),
        ),
        # 23:59:59 on 5 Oct in Hanoi
        (
            datetime(2021, 10, 5, 16, 59, 59, tzinfo=UTC),
            datetime(2021, 10, 4, 17, 0, tzinfo=UTC),
            datetime(2021, 9, 30, 17, 0, tzinfo=UTC),
        ),
        # 00:00 on 6 Oct in Hanoi
        (
            datetime(2021, 10, 5, 17, 0, 0, tzinfo=UTC),
            datetime(2021, 10, 5, 17, 0, tzinfo=UTC),
            datetime(2021, 9, 30, 17, 0, tzinfo=UTC),
        ),
        # 00:30 on 1 Nov in Hanoi, still 31 Oct in UTC
        (
            datetime(2021, 10, 31, 17, 30, tzinfo=UTC),
            datetime(2021, 10, 31, 17, 0, tzinfo=UTC),
            datetime(2021, 10, 31, 17, 0, tzinfo=UTC),
        ),
        # New Year in Hanoi
        (
            datetime(2021, 12, 31, 17, 0, tzinfo=UTC),
            datetime(2021, 12, 31, 17, 0, tzinfo=UTC),
            datetime(2021, 12, 31, 17, 0, tzinfo=UTC),
        ),
        # any aware input: 12:00 in Paris (CEST) is 17:00 in Hanoi
        (
            datetime(2021, 10, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2021, 9, 30, 17, 0, tzinfo=UTC),
            datetime(2021, 9, 30, 17, 0, tzinfo=UTC),
        ),
    ],
)
def test_window_starts(now: datetime, day: datetime, month: datetime) -> None:
    got_day, got_month = window_starts(now)
    assert (got_day, got_month) == (day, month)
    assert got_day.utcoffset() == timedelta(0)
    assert got_month.utcoffset() == timedelta(0)


def test_window_starts_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_starts(datetime(2021, 10, 5, 3, 0))
