"""Fixtures: every store test runs on SQLite and, when SMSCD_TEST_PG_URL is set,
on PostgreSQL too (in a schema of its own, dropped afterwards).

If SMSCD_TEST_PG_URL is set but the server cannot be reached, the PostgreSQL
tests fail (they do not skip): a CI that asked for PostgreSQL must run it.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from smscd.store.sql import SqlStore, open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

PG_ENV = "SMSCD_TEST_PG_URL"
T0 = datetime(2024, 11, 21, 3, 0, tzinfo=UTC)


class PgSchemas:
    """Hands out fresh schemas named ``smscd_test_<session>_<n>``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.prefix = f"smscd_test_{secrets.token_hex(4)}"
        self.count = 0
        self.engine = sa.create_engine(base_url)
        with self.engine.connect() as conn:  # fails loudly if unreachable
            conn.execute(sa.text("SELECT 1"))

    def new(self) -> str:
        self.count += 1
        schema = f"{self.prefix}_{self.count}"
        with self.engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}options={quote(f'-csearch_path={schema}')}"

    def drop_all(self) -> None:
        with self.engine.begin() as conn:
            for n in range(1, self.count + 1):
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.prefix}_{n}" CASCADE'))
        self.engine.dispose()


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
