"""Fixtures: every store test runs on SQLite and, when SMSCD_TEST_PG_URL is set,
on PostgreSQL too (in a schema of its own, dropped afterwards).

If SMSCD_TEST_PG_URL is set but the server cannot be reached, the PostgreSQL
tests fail (they do not skip): a CI that asked for PostgreSQL must run it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from smscd.store.sql import SqlStore, open_store
from tests.pg import PG_ENV, PgSchemas

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

T0 = datetime(2024, 11, 21, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PgSchemas | None]:
    base_url = os.environ.get(PG_ENV)
    if not base_url:
        yield None
        return
    schemas = PgSchemas(base_url)
    try:
        yield schemas
    finally:
        schemas.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, unmigrated database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'smscd.db'}"
    # Requested here only, so that an unreachable server fails the PostgreSQL
    # tests and not the SQLite ones.
    pg_schemas: PgSchemas | None = request.getfixturevalue("pg_schemas")
    if pg_schemas is None:
        pytest.skip(f"{PG_ENV} is not set")
    return pg_schemas.new()


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """A migrated store, empty."""
    opened = open_store(db_url, create_if_missing=True)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def store_factory(db_url: str) -> Iterator[Callable[[], SqlStore]]:
    """More SqlStore objects on the same (migrated) database, closed at the end."""
    opened: list[SqlStore] = []

    def make() -> SqlStore:
        s = open_store(db_url, create_if_missing=True)
        opened.append(s)
        return s

    try:
        yield make
    finally:
        for s in opened:
            s.close()
