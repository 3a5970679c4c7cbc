"""The store's connections and transactions, which every part of ``SqlStore`` uses.

``StoreBase`` holds the engine and gives the parts (one mixin per aggregate,
composed in ``smscd.store.sql``) their only ways to the database: ``_write``
(one write transaction), ``_read`` (one statement, without a transaction on
SQLite) and ``_insert_numbered`` (a batch INSERT that returns its new ids in
order). Every database error leaves them as ``StoreUnavailable``, or
``StoreRejected`` when the data itself was refused, with the statement's
parameters hidden: they may carry a password.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import Insert, Select, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from smscd.store._cursor import DBAPI_ERRORS, Plans, Statements, prepared
from smscd.store._engine import masked_url, sqlite_path
from smscd.store.models import InboundRow, OutboundRow, ReceiptRow
from smscd.store.types import StoreError, StoreRejected, StoreUnavailable, WalCheckpoint

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

__all__ = ["StoreBase", "unavailable"]

#: The id a new row of each table gets on SQLite (see ``_insert_numbered``).
_LAST_ID = {
    table: prepared(select(func.max(table.c.id)))
    for table in (InboundRow.__table__, OutboundRow.__table__, ReceiptRow.__table__)
}


#: DBAPI errors (PEP 249 names) that say the data itself was refused.
_REJECTED_DATA = frozenset({"DataError", "IntegrityError"})


def unavailable(exc: Exception) -> StoreError:
    """The store's error for a failed transaction: StoreRejected when the
    database (or the driver, binding a value) refused the data itself, which a
    retry of the same item would meet again; StoreUnavailable otherwise."""
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    message = f"database error: {type(detail).__name__}: {detail}"
    if isinstance(exc, (ValueError, OverflowError)) or _REJECTED_DATA.intersection(
        cls.__name__ for cls in type(detail).__mro__
    ):
        return StoreRejected(message)
    return StoreUnavailable(message)


class StoreBase:
    """The engine, the transactions and the write lock; the base of every part
    of ``SqlStore``."""

    def __init__(self, engine: Engine, *, url: str) -> None:
        self._engine = engine
        self._url = url
        self._postgres = engine.dialect.name == "postgresql"
        #: Who holds the items this store claims (claimed_by): one per process.
        self.owner = secrets.token_hex(8)
        # SQLite has one writer at a time; threads of this process queue here
        # instead of in SQLite's busy handler, which sleeps (1, 2, 5, 10 ... ms)
        # between retries and so turns contention into idle time.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        # The engine's connections for the store's writes and one-statement reads
        # (see _engine: how each begins); options set once here, not per
        # connection, which cost a dialect call each time.
        self._writing = engine.execution_options(smscd_write=True)
        self._reading = engine.execution_options(smscd_read=True)
        #: SQLite: the prepared statements, compiled for the DBAPI cursor.
        self._plans = Plans(engine.dialect) if engine.dialect.name == "sqlite" else None
        #: Write transactions begun (SQLite: counted under the write lock), so
        #: that a background checkpoint runs only after writes.
        self.write_count = 0
        #: SQLite: ``checkpoint_wal``'s own connection, made on first use.
        self._checkpoint_conn: sqlite3.Connection | None = None

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return masked_url(self._url)

    def close(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
        self._engine.dispose()

    def checkpoint(self) -> None:
        """SQLite: copy the WAL into the database and truncate it, so page images
        of replies that were queued (plaintext) and are now masked do not linger
        on disk; freed space is zeroed by ``secure_delete``. PostgreSQL: nothing
        (its dead tuples are autovacuum's business)."""
        if self._engine.dialect.name != "sqlite":
            return
        try:
            with self._write_lock, self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    def checkpoint_wal(self, *, cap_pages: int) -> WalCheckpoint | None:
        """SQLite with the auto-checkpoint off (``open_store(...,
        background_checkpoints=True)``): copy what the WAL holds into the
        database without holding up a writer (PASSIVE), on a connection of its
        own. While writes keep coming, a passive checkpoint seldom ends with
        the WAL fully copied, and SQLite restarts the WAL only then; so once it
        holds more than ``cap_pages`` pages, the rest is copied and the WAL
        restarted under the store's write lock, which costs the writers only
        the pages written since the last pass. A reader in another process
        that keeps the WAL from restarting is not waited for: the next pass
        tries again. None on PostgreSQL. Blocking: one thread at a time."""
        if self._engine.dialect.name != "sqlite":
            return None
        try:
            conn = self._checkpointer()
            busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages <= cap_pages:
                return WalCheckpoint(pages=pages, copied=copied, restarted=False)
            with self._write_lock:
                busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            return WalCheckpoint(pages=pages, copied=copied, restarted=not busy)
        except sqlite3.Error as exc:
            raise unavailable(exc) from exc

    def _checkpointer(self) -> sqlite3.Connection:
        if self._checkpoint_conn is None:
            path = sqlite_path(self._url)
            if path is None:
                raise StoreUnavailable("an in-memory SQLite database has no WAL")
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Never SQLite's busy handler: a pass that cannot go on now ends.
            conn.execute("PRAGMA busy_timeout=0")
            self._checkpoint_conn = conn
        return self._checkpoint_conn

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Statements]:
        try:
            with (
                self._write_lock,
                self._writing.connect() as conn,
                closing(Statements(conn, self._plans)) as statements,
                conn.begin(),
            ):
                self.write_count += 1
                yield statements
        except (SQLAlchemyError, *DBAPI_ERRORS, UnicodeError, OverflowError) as exc:
            # UnicodeError, OverflowError: a value the driver could not bind.
            raise unavailable(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Statements]:
        """For reads of ONE statement (on SQLite they run without a transaction)."""
        try:
            with (
                self._reading.connect() as conn,
                closing(Statements(conn, self._plans)) as statements,
            ):
                yield statements
        except (SQLAlchemyError, *DBAPI_ERRORS) as exc:
            raise unavailable(exc) from exc

    def _finds_any(self, stmt: Select[*tuple[Any, ...]]) -> bool:
        """Whether ``stmt`` (a SELECT) has a row, read without a transaction:
        a periodic claim looks before it takes the write lock, so that a
        claim that finds nothing (most of them) holds up no writer."""
        with self._read() as conn:
            return conn.execute(stmt.limit(1)).first() is not None

    def _insert_numbered(
        self, conn: Statements, stmt: Insert, rows: list[dict[str, Any]]
    ) -> list[int]:
        """INSERT ``rows`` (the table's ``id`` is generated) and return their new
        ids, in the order of ``rows``.

        PostgreSQL: one batched INSERT ... RETURNING, which SQLAlchemy orders.
        SQLite has no ordered form of that, and SQLAlchemy falls back to one
        INSERT per row. So on SQLite one row takes the id SQLite gives it
        (the cursor's ``lastrowid``), and several are numbered here, from
        ``max(id) + 1``: what SQLite picks itself for an INTEGER PRIMARY KEY
        without AUTOINCREMENT, and no one else can insert meanwhile, as the
        write transaction holds the database's lock from its BEGIN IMMEDIATE.
        One executemany then."""
        table = stmt.table
        if self._postgres:
            returning = stmt.returning(table.c.id, sort_by_parameter_order=True)
            return list(conn.execute(returning, rows).scalars())
        if len(rows) == 1:
            return [conn.execute(stmt, rows[0]).lastrowid]
        last = conn.execute(_LAST_ID[table]).scalar() or 0
        ids = list(range(last + 1, last + 1 + len(rows)))
        conn.execute(stmt, [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
        return ids
