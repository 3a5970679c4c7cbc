from __future__ import annotations

import io
from datetime import timedelta

import sqlalchemy as sa

from smscd.ops import db
from smscd.reset import Outcome
from smscd.store.migrate import head_revision
from smscd.store.sql import open_store
from tests.store.helpers import T0, add_mo, decision


def test_upgrade_reports_what_it_did(db_url: str) -> None:
    masked = sa.make_url(db_url).render_as_string(hide_password=True)
    out = io.StringIO()
    assert db.upgrade(db_url, out) == 0
    assert out.getvalue() == f"database at {masked} migrated from empty to {head_revision()}\n"
    out = io.StringIO()
    assert db.upgrade(db_url, out) == 0
    assert out.getvalue() == f"database at {masked} is up to date (revision {head_revision()})\n"


def test_prune_refuses_a_short_retention(db_url: str) -> None:
    out = io.StringIO()
    assert db.prune(db_url, retention_days=30, now=T0, out=out) == 2
    assert out.getvalue() == (
        "error: retention of 30 days refused: rate limits look back a month, "
        "keep at least 35 days\n"
    )


def test_prune_prints_what_it_deleted(db_url: str) -> None:
    store = open_store(db_url, create_if_missing=True)
    try:
        old = add_mo(store, at=T0 - timedelta(days=100), text="old")
        store.commit_decision(decision(old, outcome=Outcome.MISMATCH))
        oid = store.claim_outbound(carrier="viettel", now=T0, limit=1, lease_s=1)[0].id
        store.mark_failed(oid, status=8, now=T0 - timedelta(days=100))
    finally:
        store.close()
    out = io.StringIO()
    assert db.prune(db_url, retention_days=35, now=T0, out=out) == 0
    assert out.getvalue() == (
        "pruned messages received before 2024-10-17T03:00:00+00:00: "
        "1 inbound, 1 outbound, 0 receipts, 1 charges\n"
    )


def test_prune_refuses_an_unmigrated_database(db_url: str) -> None:
    out = io.StringIO()
    assert db.prune(db_url, retention_days=35, now=T0, out=out) == 2
    assert "is not migrated" in out.getvalue()
