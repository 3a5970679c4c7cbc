"""SQLite: the store's hot statements run on the DBAPI cursor (``_cursor``).

The store's behaviour on that path is what every other store test checks on
SQLite (PostgreSQL runs the same tests through SQLAlchemy's execution); these
check what is particular to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event

from smscd.store import _cursor, sql
from smscd.store.types import StoreRejected
from tests.store.helpers import (
    CODE,
    add_account,
    add_mo,
    decision,
    new_mo,
    rows,
    scalar,
    statements_run,
)

if TYPE_CHECKING:
    from pathlib import Path

    from smscd.store.sql import SqlStore


@pytest.fixture
def sqlite_store(tmp_path: Path) -> SqlStore:
    return sql.open_store(f"sqlite:///{tmp_path / 'smscd.db'}", create_if_missing=True)


def test_every_prepared_statement_compiles_for_the_cursor(sqlite_store: SqlStore) -> None:
    """A statement marked prepared() that falls back to SQLAlchemy's execution
    would still work, only slowly: catch that here."""
    add_account(sqlite_store)  # connects: the dialect knows the server now
    plans = _cursor.Plans(sqlite_store.engine.dialect)
    assert len(_cursor._PREPARED) >= 25  # the write path's statements, and the reads'
    for statement in _cursor._PREPARED.values():
        table = getattr(statement, "table", None)
        keys = {c.key: None for c in table.columns if c.key != "id"} if table is not None else {}
        if not getattr(statement, "is_insert", False):
            keys = {}
        assert plans.plan(statement, keys) is not None, str(statement)


def test_hot_statements_skip_sqlalchemy_and_instrumented_engines_do_not(
    sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_account(sqlite_store)
    ran = statements_run(sqlite_store)
    through_sqlalchemy: list[str] = []
    dialect = sqlite_store.engine.dialect
    real = dialect.do_execute

    def do_execute(cursor: Any, statement: str, *args: Any) -> None:
        through_sqlalchemy.append(statement)
        real(cursor, statement, *args)

    monkeypatch.setattr(dialect, "do_execute", do_execute)
    assert sqlite_store.find_account(CODE) is not None
    # SQLite ran the lookup; SQLAlchemy's execution did not.
    assert [text for text in ran if "FROM accounts" in text] != []
    assert [text for text in through_sqlalchemy if "FROM accounts" in text] == []

    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(sqlite_store.engine, "before_cursor_execute", listen)
    try:
        assert sqlite_store.find_account(CODE) is not None
    finally:
        event.remove(sqlite_store.engine, "before_cursor_execute", listen)
    # With a listener, SQLAlchemy runs it, and the listener sees it.
    assert [text for text in seen if "FROM accounts" in text] != []
    assert [text for text in through_sqlalchemy if "FROM accounts" in text] != []


def test_a_failure_in_sqlite_itself_rolls_the_decision_back(sqlite_store: SqlStore) -> None:
    """Invariant 2 on the cursor path: an error raised by SQLite mid-decision
    (after the password and the reply were written) leaves nothing behind. A
    trigger's RAISE is a constraint failure to SQLite: the data was refused,
    StoreRejected (a retry of the same decision would meet it again)."""
    add_account(sqlite_store)
    mo = add_mo(sqlite_store)
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON charges "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
        )
    with pytest.raises(StoreRejected, match="injected"):
        sqlite_store.commit_decision(decision(mo))
    account = sqlite_store.find_account(CODE)
    assert account is not None and account.password_hash is None
    assert scalar(sqlite_store, "SELECT count(*) FROM outbound_messages") == 0
    assert rows(sqlite_store, "SELECT state FROM inbound_messages") == [("received",)]


def test_rows_come_back_typed(sqlite_store: SqlStore) -> None:
    """Results of the cursor path read as SQLAlchemy's would: named columns,
    aware datetimes (the duplicate check compares them with the new MO's),
    booleans; an IN list is one JSON array."""
    sqlite_store.store_inbound([new_mo()], duplicate_window_s=0)
    ran = statements_run(sqlite_store)
    (again,) = sqlite_store.store_inbound([new_mo()], duplicate_window_s=120)
    assert any("json_each" in text for text in ran)
    assert again.state.value == "duplicate"
    add_account(sqlite_store)
    accounts = sqlite_store.find_accounts([CODE, "9999999999"])
    found = accounts[CODE]
    assert found is not None and found.e_transaction is True and found.must_change is False
    assert accounts["9999999999"] is None


def test_writes_take_the_write_lock_first_and_lone_reads_begin_nothing(
    sqlite_store: SqlStore,
) -> None:
    """A write transaction starts with BEGIN IMMEDIATE (it waits for SQLite's
    write lock up front instead of failing with SQLITE_BUSY when a read in it
    turns into a write); a one-statement read runs without a transaction."""
    ran = statements_run(sqlite_store)
    add_account(sqlite_store)
    sqlite_store.find_account(CODE)
    add_mo(sqlite_store)
    firsts = [" ".join(text.split()[:2]) for text in ran if not text.startswith("PRAGMA")]
    assert firsts == [
        "BEGIN IMMEDIATE",
        "INSERT INTO",  # the account
        "COMMIT",
        "SELECT accounts.phone,",  # the lookup, alone
        "BEGIN IMMEDIATE",
        "INSERT INTO",  # the MO, one row: numbered by SQLite itself
        "COMMIT",
    ]
