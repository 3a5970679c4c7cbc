"""The daemon's store checkpoints SQLite's WAL in the background
(``open_store(..., background_checkpoints=True)``, ``checkpoint_wal``): its
commits never copy the WAL into the database, a passive pass does, and a WAL
past its cap is restarted, so the file stops growing. Every other user of the
store keeps SQLite's auto-checkpoint."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from smscd.store.sql import SqlStore, open_store
from tests.store.conftest import T0
from tests.store.helpers import add_mo, scalar

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def daemon_store(tmp_path: Path) -> Iterator[SqlStore]:
    url = f"sqlite:///{tmp_path / 'smscd.db'}"
    open_store(url, create_if_missing=True).close()
    store = open_store(url, background_checkpoints=True)
    try:
        yield store
    finally:
        store.close()


def _write(store: SqlStore, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        add_mo(store, msisdn=f"8490{n:07d}", at=T0 + timedelta(seconds=n))


def test_only_the_daemons_store_turns_the_auto_checkpoint_off(
    tmp_path: Path, daemon_store: SqlStore
) -> None:
    assert scalar(daemon_store, "PRAGMA wal_autocheckpoint") == 0
    assert scalar(daemon_store, "PRAGMA journal_size_limit") == 64 << 20
    other = open_store(f"sqlite:///{tmp_path / 'smscd.db'}")
    try:
        assert scalar(other, "PRAGMA wal_autocheckpoint") == 1000
        assert scalar(other, "PRAGMA journal_size_limit") == 1 << 20
    finally:
        other.close()


def test_commits_leave_the_wal_to_the_checkpointer(daemon_store: SqlStore) -> None:
    _write(daemon_store, 300)
    first = daemon_store.checkpoint_wal(cap_pages=100_000)
    assert first is not None
    # No commit checkpointed: SQLite's own auto-checkpoint would have copied
    # and restarted the WAL at 1,000 pages.
    assert first.pages > 1000
    assert (first.copied, first.restarted) == (first.pages, False)
    again = daemon_store.checkpoint_wal(cap_pages=100_000)
    assert again == first  # nothing written since: nothing more to copy


def test_a_wal_past_its_cap_is_restarted(daemon_store: SqlStore) -> None:
    _write(daemon_store, 300)
    done = daemon_store.checkpoint_wal(cap_pages=50)
    assert done is not None
    assert done.pages > 50
    assert (done.copied, done.restarted) == (done.pages, True)
    # The next writes start the WAL again from its beginning.
    _write(daemon_store, 10, start=300)
    after = daemon_store.checkpoint_wal(cap_pages=100_000)
    assert after is not None
    assert 0 < after.pages < done.pages / 5
    assert scalar(daemon_store, "SELECT count(*) FROM inbound_messages") == 310


def test_the_daemons_wal_keeps_its_file_until_the_truncating_checkpoint(
    tmp_path: Path, daemon_store: SqlStore
) -> None:
    wal = tmp_path / "smscd.db-wal"
    _write(daemon_store, 300)
    grown = wal.stat().st_size
    assert grown > 1 << 20
    done = daemon_store.checkpoint_wal(cap_pages=50)
    assert done is not None and done.restarted
    # The commit that starts the WAL again from its beginning does not cut
    # the file back (a commit of the commands' stores would, to 1 MiB), so
    # the next ones write into it without growing it.
    _write(daemon_store, 10, start=300)
    assert wal.stat().st_size == grown
    daemon_store.checkpoint()
    assert wal.stat().st_size == 0
    assert scalar(daemon_store, "SELECT count(*) FROM inbound_messages") == 310


def test_postgres_has_no_wal_to_checkpoint(store: SqlStore) -> None:
    if store.engine.dialect.name == "sqlite":
        assert store.checkpoint_wal(cap_pages=1000) is not None
    else:
        assert store.checkpoint_wal(cap_pages=1000) is None
