"""Bulk account upserts: the fastest correct path per dialect.

Theory of operation
-------------------
An import is ONE transaction on a raw DBAPI connection (SQLAlchemy's per-row
machinery would cost more than the database itself at 21.6 million rows):

* SQLite: ``executemany`` of ``INSERT ... ON CONFLICT(bhxh_code) DO UPDATE``
  per batch, inside ``BEGIN IMMEDIATE``. For the duration of the import the
  connection runs with ``synchronous=OFF`` and a bigger page cache (restored
  after): the transaction is still atomic (WAL), only its durability against a
  power cut before the final commit is traded away, and a power cut merely
  means importing again. Rows are applied in file order, so the last
  occurrence of a code wins.
* PostgreSQL: each batch is ``COPY``-ed into a temporary table (with its line
  order); ``finish`` applies them with one ``INSERT ... SELECT DISTINCT ON
  (bhxh_code) ... ORDER BY seq DESC ON CONFLICT DO UPDATE`` (so the last
  occurrence wins there too: PostgreSQL refuses to update one row twice in a
  statement).

Either way memory stays flat (one batch at a time) and an aborted import
leaves the table as it was. The update touches ``phone``, ``e_transaction`` and
``updated_at`` only (never the password), and only when something changed.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import Engine

__all__ = ["AccountImport", "open_account_import"]

SQLITE_IMPORT_CACHE_KIB = 128 * 1024

_SQLITE_UPSERT = (
    "INSERT INTO accounts (bhxh_code, phone, e_transaction, must_change, updated_at) "
    "VALUES (?, ?, ?, 0, ?) "
    "ON CONFLICT (bhxh_code) DO UPDATE SET "
    "phone = excluded.phone, e_transaction = excluded.e_transaction, "
    "updated_at = excluded.updated_at "
    "WHERE accounts.phone IS NOT excluded.phone "
    "OR accounts.e_transaction IS NOT excluded.e_transaction"
)

_PG_STAGE = (
    "CREATE TEMPORARY TABLE smscd_accounts_import "
    "(seq bigint NOT NULL, bhxh_code text NOT NULL, phone text NOT NULL, "
    "e_transaction boolean NOT NULL) ON COMMIT DROP"
)
_PG_APPLY = (
    "INSERT INTO accounts (bhxh_code, phone, e_transaction, must_change, updated_at) "
    "SELECT DISTINCT ON (bhxh_code) bhxh_code, phone, e_transaction, false, %s "
    "FROM smscd_accounts_import ORDER BY bhxh_code, seq DESC "
    "ON CONFLICT (bhxh_code) DO UPDATE SET "
    "phone = excluded.phone, e_transaction = excluded.e_transaction, "
    "updated_at = excluded.updated_at "
    "WHERE accounts.phone IS DISTINCT FROM excluded.phone "
    "OR accounts.e_transaction IS DISTINCT FROM excluded.e_transaction"
)


class AccountImport:
    """Feed batches of ``(bhxh_code, phone, e_transaction)`` with :meth:`add`."""

    def __init__(self, dbapi_connection: Any, dialect: str, now: datetime) -> None:
        self._conn = dbapi_connection
        self._dialect = dialect
        self._now = now.astimezone(UTC)
        self._seq = 0
        self.aborted = False

    def add(self, rows: Sequence[tuple[str, str, bool]]) -> None:
        if self.aborted:
            raise RuntimeError("import aborted")
        if self._dialect == "sqlite":
            stamp = self._now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            self._conn.executemany(
                _SQLITE_UPSERT, [(code, phone, int(etx), stamp) for code, phone, etx in rows]
            )
            return
        with (
            self._conn.cursor() as cursor,
            cursor.copy(
                "COPY smscd_accounts_import (seq, bhxh_code, phone, e_transaction) FROM STDIN"
            ) as copy,
        ):
            seq = self._seq
            for code, phone, etx in rows:
                seq += 1
                copy.write_row((seq, code, phone, etx))
            self._seq = seq

    def abort(self) -> None:
        """Roll everything back when the block ends (nothing is imported)."""
        self.aborted = True

    def _begin(self) -> None:
        if self._dialect == "sqlite":
            self._conn.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
            self._conn.execute("PRAGMA synchronous=OFF")
            self._conn.execute("BEGIN IMMEDIATE")
        else:
            with self._conn.cursor() as cursor:
                cursor.execute(_PG_STAGE)

    def _commit(self) -> None:
        if self._dialect == "sqlite":
            self._conn.execute("COMMIT")
        else:
            with self._conn.cursor() as cursor:
                cursor.execute(_PG_APPLY, (self._now,))
            self._conn.commit()

    def _rollback(self) -> None:
        if self._dialect == "sqlite":
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        else:
            self._conn.rollback()

    def _restore(self) -> None:
        if self._dialect == "sqlite":
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA cache_size=-2000")


@contextmanager
def open_account_import(engine: Engine, *, now: datetime) -> Iterator[AccountImport]:
    pooled = engine.raw_connection()
    try:
        importer = AccountImport(pooled.driver_connection, engine.dialect.name, now)
        importer._begin()
        try:
            try:
                yield importer
            except BaseException:
                importer._rollback()
                raise
            if importer.aborted:
                importer._rollback()
            else:
                importer._commit()
        finally:
            importer._restore()
    finally:
        pooled.close()
