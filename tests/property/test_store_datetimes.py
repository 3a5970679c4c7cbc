"""UtcDateTime's own SQLite conversion writes the strings SQLAlchemy's SQLite
DATETIME writes (rows of either read the same), and reads back the instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from smscd.store.models import UtcDateTime

DIALECT = sqlite.dialect()
BIND = UtcDateTime().bind_processor(DIALECT)
RESULT = UtcDateTime().result_processor(DIALECT, None)
GENERIC_BIND = sqlite.DATETIME().bind_processor(DIALECT)  # type: ignore[no-untyped-call]

aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-5))]),
)


@given(aware)
def test_bound_string_is_sqlalchemys_and_reads_back(value: datetime) -> None:
    assert BIND is not None and RESULT is not None and GENERIC_BIND is not None
    stored = BIND(value)
    assert stored == GENERIC_BIND(value.astimezone(UTC).replace(tzinfo=None))
    back = RESULT(stored)
    assert back == value and back.tzinfo is UTC


def test_reads_strings_without_microseconds() -> None:
    assert RESULT is not None
    assert RESULT("2026-11-21 03:04:05") == datetime(2026, 11, 21, 3, 4, 5, tzinfo=UTC)


def test_refuses_naive() -> None:
    assert BIND is not None
    with pytest.raises(ValueError, match="naive"):
        BIND(datetime(2026, 11, 21))
