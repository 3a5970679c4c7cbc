"""Engines for the store: SQLite tuned for one daemon, PostgreSQL to scale.

SQLite: the file holds personal data, so it is created (with its parent
directory) mode 0600 *before* SQLite opens it; SQLite gives its -wal and -shm
files the same mode. Every connection gets WAL, ``busy_timeout``,
``foreign_keys`` and ``synchronous=NORMAL``. pysqlite's own transaction
handling is turned off (``isolation_level=None``) and we emit ``BEGIN``
ourselves: ``BEGIN IMMEDIATE`` for the store's writing methods (connection
execution option ``smscd_write=True``), so a read-then-write transaction takes
the write lock first and waits on ``busy_timeout`` instead of failing with
SQLITE_BUSY when it upgrades; nothing for the store's one-statement reads
(``smscd_read=True``: SQLite runs a lone statement atomically); ``BEGIN`` for
everything else (Alembic, tests).

A daemon's engine (``autocheckpoint=False``) turns SQLite's WAL auto-checkpoint
off: otherwise the COMMIT that crosses 1,000 WAL pages copies them into the
database and syncs it, and every MO waiting behind that COMMIT waits for the
copy. The daemon checkpoints in a thread of its own instead
(``StoreBase.checkpoint_wal``). Every other user of the store (the commands,
the tests) keeps the auto-checkpoint.

The WAL file's size limit (``journal_size_limit``) is applied by the COMMIT
that restarts the WAL from its start: it truncates the file, which the next
commits grow again. A daemon's checkpoints restart the WAL several times a
second, so its engine sets the limit far above what the WAL holds between
two checkpoints (``DAEMON_WAL_LIMIT``): no commit truncates, none grows the
file. The daemon truncates the WAL itself every 30 s (``SqlStore.checkpoint``),
so the page images of plaintext replies do not linger there either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, create_engine, make_url

from smscd.store.types import StoreError

__all__ = [
    "DatabaseMissing",
    "SchemaNotCurrent",
    "create_store_engine",
    "masked_url",
    "sqlite_path",
]

SQLITE_BUSY_TIMEOUT_MS = 5000

# hide_parameters: a failed statement's parameters (a queued reply carries a
# plaintext password, an account its phone) never reach an error message or log.


class SchemaNotCurrent(StoreError):
    """The database was never migrated, or is behind (or ahead of) this version."""


class DatabaseMissing(StoreError):
    """A SQLite file that does not exist (and we were told not to create it)."""


def masked_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other dialects and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _create_private_file(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def create_store_engine(url: str, *, create_file: bool, autocheckpoint: bool = True) -> Engine:
    path = sqlite_path(url)
    if path is not None and not path.exists():
        if not create_file:
            raise DatabaseMissing(f"database at {masked_url(url)} does not exist")
        _create_private_file(path)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False})
        _tune_sqlite(engine, autocheckpoint=autocheckpoint)
        return engine
    return create_engine(url, hide_parameters=True)


#: Bytes the WAL file is cut back to when it restarts: for the commands and
#: tests, and for the daemon (whose WAL restarts several times a second).
WAL_LIMIT = 1 << 20
DAEMON_WAL_LIMIT = 64 << 20


def _tune_sqlite(engine: Engine, *, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # A reply's body is masked in place once the SMSC accepts it; without
            # secure_delete the plaintext would live on in the freed page space.
            cursor.execute("PRAGMA secure_delete=ON")
            # Keep the WAL (which holds page images of queued replies until a
            # checkpoint) from lingering at its high-water mark; the daemon
            # truncates it itself (see the module's docstring).
            limit = WAL_LIMIT if autocheckpoint else DAEMON_WAL_LIMIT
            cursor.execute(f"PRAGMA journal_size_limit={limit}")
            if not autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Straight on the DBAPI connection: SQLAlchemy's execution of a
        # statement costs ten times pysqlite's, once per transaction.
        options = connection.get_execution_options()
        if options.get("smscd_write", False):
            _driver(connection).execute("BEGIN IMMEDIATE")
        elif not options.get("smscd_read", False):
            _driver(connection).execute("BEGIN")
        # smscd_read: a single read runs without BEGIN (autocommit): one
        # round trip less on the decision path.


def _driver(connection: Connection) -> Any:
    return connection.connection.driver_connection
