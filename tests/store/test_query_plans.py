"""What the daemon runs periodically, at its start and at its stop searches an
index: no statement of it reads a whole message table, whose history grows
by one row per MO (millions of rows in production, where a scan every few
seconds would hold SQLite's write lock, and every MO behind it, for seconds).

Each store method runs on SQLite with its statements traced; each statement
is then explained (``EXPLAIN QUERY PLAN``) on the same database."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from smscd.reset import Outcome
from smscd.store.sql import SqlStore, open_store
from tests.store.helpers import T0, add_account, add_mo, decision, rows, statements_run

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

_MESSAGE_TABLES = ("inbound_messages", "outbound_messages", "receipts", "charges")
NOW = T0 + timedelta(hours=1)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(f"sqlite:///{tmp_path / 'smscd.db'}", create_if_missing=True)
    try:
        add_account(store)
        for n, carrier in enumerate(("viettel", "mobifone", "vinaphone") * 4):
            mo = add_mo(store, carrier=carrier, msisdn=f"8490{n:07d}", at=T0)
            store.commit_decisions([decision(mo, outcome=Outcome.MISMATCH, code=None)])
        # No ANALYZE (the store never runs it): the planner assumes large
        # tables, as a daemon's database has them.
        yield store
    finally:
        store.close()


def _scans(store: SqlStore, sql: str) -> list[str]:
    """The steps of the statement's plan that read a message table, or one of
    its indexes, whole."""
    plan = [str(row[-1]) for row in rows(store, f"EXPLAIN QUERY PLAN {sql}")]
    return [
        step for step in plan if re.fullmatch(rf"SCAN ({'|'.join(_MESSAGE_TABLES)})( .*)?", step)
    ]


_RUNS: dict[str, Callable[[SqlStore], object]] = {
    "recover_inbound": lambda s: s.recover_inbound(limit=100, now=NOW, stale_s=60),
    "lease_outbound": lambda s: s.lease_outbound(carrier="viettel", now=NOW, limit=10, lease_s=30),
    "expire_replies": lambda s: s.expire_replies(now=NOW, max_age_s=86_400, max_attempts=10),
    "release_abandoned": lambda s: s.release_abandoned(),
    "release_own": lambda s: s.release_own(),
    "release_leases": lambda s: s.release_leases(),
    "outbox_summary": lambda s: s.outbox_summary(["viettel", "mobifone"]),
    "outbox_depth": lambda s: s.outbox_depth(),
    "quarantined": lambda s: s.quarantined(),
    "due_api_callbacks": lambda s: s.due_api_callbacks(now=NOW),
}


@pytest.mark.parametrize("method", sorted(_RUNS))
def test_the_daemons_periodic_statements_search_an_index(
    sqlite_store: SqlStore, method: str
) -> None:
    ran = statements_run(sqlite_store)
    _RUNS[method](sqlite_store)
    statements = [
        sql for sql in ran if re.match(r"\s*(WITH|SELECT|UPDATE|DELETE)\b", sql, re.IGNORECASE)
    ]
    assert statements, f"{method} ran no statement"
    for sql in statements:
        assert _scans(sqlite_store, sql) == [], sql
