from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from smscd.store._engine import sqlite_path
from smscd.store.migrate import current_revision, head_revision, upgrade
from smscd.store.models import Base
from smscd.store.sql import SchemaNotCurrent, open_store

if TYPE_CHECKING:
    from pathlib import Path


def test_upgrade_empty_to_head_then_idempotent(db_url: str) -> None:
    assert current_revision(db_url) is None
    head = head_revision()
    assert upgrade(db_url) == head
    assert current_revision(db_url) == head
    assert upgrade(db_url) == head  # again: nothing to do, no error
    engine = sa.create_engine(db_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert names >= {
        "accounts",
        "inbound_messages",
        "outbound_messages",
        "outbound_message_ids",
        "receipts",
        "receipt_id_keys",
        "charges",
        "alembic_version",
    }


def test_models_agree_with_migrations(db_url: str) -> None:
    upgrade(db_url)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_open_store_refuses_an_unmigrated_database(db_url: str) -> None:
    masked = sa.make_url(db_url).render_as_string(hide_password=True)
    with pytest.raises(SchemaNotCurrent) as info:
        open_store(db_url)
    assert str(info.value) == (
        f"database at {masked} is not migrated (at empty, need {head_revision()}): "
        'run "smscd db upgrade"'
    )
    path = sqlite_path(db_url)
    if path is not None:
        assert not path.exists()  # refusing did not create the file


def test_open_store_refuses_an_out_of_date_database(db_url: str) -> None:
    upgrade(db_url)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaNotCurrent, match=rf"\(at 0000, need {head_revision()}\)"):
        open_store(db_url)
    with pytest.raises(SchemaNotCurrent):
        open_store(db_url, create_if_missing=True)  # never migrates a non-empty db


def test_password_is_masked_in_the_refusal() -> None:
    url = "postgresql+psycopg://smscd:s3cret@127.0.0.1:1/nowhere"
    from smscd.store._engine import masked_url

    assert masked_url(url) == "postgresql+psycopg://smscd:***@127.0.0.1:1/nowhere"


def test_sqlite_file_and_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "smscd.db"
    old_umask = os.umask(0o022)
    try:
        store = open_store(f"sqlite:///{path}", create_if_missing=True)
        store.outbox_depth()
        store.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for sidecar in path.parent.iterdir():
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar.name


def test_sqlite_connection_pragmas(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}", create_if_missing=True)
    try:
        with store.engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        store.close()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


def test_a_0001_database_with_messages_upgrades_to_containment(db_url: str) -> None:
    """Rows written before 0002 survive it, start with no claim, and the new
    states are accepted where an unknown one still is not."""
    from alembic import command

    from smscd.store.migrate import alembic_config

    path = sqlite_path(db_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(
                sa.text(
                    "INSERT INTO inbound_messages (id, carrier, source_addr, source_addr_ton,"
                    " source_addr_npi, msisdn, destination_addr, text, received_at, state)"
                    " VALUES (7, 'viettel', '0327000686', 0, 1, '84327000686', '8079',"
                    " 'BH MK 0123456789', '2024-11-21 03:00:00', 'received')"
                )
            )
        assert upgrade(db_url) == head_revision()
        with engine.begin() as conn:
            assert conn.execute(
                sa.text("SELECT state, claims, claimed_by FROM inbound_messages")
            ).all() == [("received", 0, None)]
            conn.execute(sa.text("UPDATE inbound_messages SET state = 'quarantined'"))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text("UPDATE inbound_messages SET state = 'bogus'"))
    finally:
        engine.dispose()
