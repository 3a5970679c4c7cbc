"""Migration 0003 (the HTTP API) on a 0002 database that holds messages."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from smscd.store._engine import sqlite_path
from smscd.store.migrate import alembic_config, head_revision, upgrade

_ROWS_0002 = (
    "INSERT INTO inbound_messages (id, carrier, source_addr, source_addr_ton, source_addr_npi,"
    " msisdn, destination_addr, text, received_at, state, outcome, bhxh_code, decided_at)"
    " VALUES (7, 'viettel', '0327000686', 0, 1, '84327000686', '8079', 'BH MK 0123456789',"
    " '2024-11-21 03:00:00', 'decided', 'reset_ok', '0123456789', '2024-11-21 03:00:01')",
    "INSERT INTO outbound_messages (id, inbound_id, carrier, destination_addr, dest_addr_ton,"
    " dest_addr_npi, body, state, attempts, next_attempt_at, created_at, smsc_message_id,"
    " accepted_at) VALUES (3, 7, 'viettel', '84327000686', 1, 1, '***', 'accepted', 1,"
    " '2024-11-21 03:00:01', '2024-11-21 03:00:01', 'abc', '2024-11-21 03:00:02')",
    "INSERT INTO outbound_message_ids (carrier, key, outbound_id) VALUES ('viettel', 'abc', 3)",
    "INSERT INTO receipts (id, carrier, message_id, stat, err, final, received_at, outbound_id)"
    " VALUES (5, 'viettel', 'abc', 'DELIVRD', '000', true, '2024-11-21 03:00:05', 3)",
    "INSERT INTO charges (id, inbound_id, carrier, amount_vnd, mode, state, created_at)"
    " VALUES (9, 7, 'viettel', 1000, 'mo', 'final', '2024-11-21 03:00:01')",
)


def _insert(conn: sa.Connection, sql: str) -> None:
    conn.execute(sa.text(sql))


def test_a_0002_database_with_messages_upgrades_to_the_api_schema(db_url: str) -> None:
    path = sqlite_path(db_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
            for sql in _ROWS_0002:
                _insert(conn, sql)
        assert upgrade(db_url) == head_revision() == "0003"
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert conn.execute(
                sa.text("SELECT id, state, channel, client_id FROM inbound_messages")
            ).all() == [(7, "decided", "sms", None)]
            assert conn.execute(
                sa.text(
                    "SELECT id, inbound_id, state, client_id, client_ref, source_addr"
                    " FROM outbound_messages"
                )
            ).all() == [(3, 7, "accepted", None, None, None)]
            assert conn.execute(
                sa.text("SELECT id, inbound_id, outbound_id, channel, amount_vnd FROM charges")
            ).all() == [(9, 7, None, "sms", 1000)]
            assert conn.execute(
                sa.text(
                    "SELECT r.id, o.id FROM receipts r JOIN outbound_messages o"
                    " ON o.id = r.outbound_id"
                )
            ).all() == [(5, 3)]
            # An API client's MT: no MO behind it, its own charge.
            _insert(
                conn,
                "INSERT INTO api_clients (id, name, token_hash, scopes, sender, sender_ton,"
                " rate_per_s, created_at) VALUES (1, 'vssid-app', 'ab', 'messages', 'VssID',"
                " 5, 20, '2024-11-21 03:00:00')",
            )
            _insert(
                conn,
                "INSERT INTO outbound_messages (id, inbound_id, client_id, client_ref, carrier,"
                " destination_addr, dest_addr_ton, dest_addr_npi, body, state, attempts,"
                " next_attempt_at, created_at, source_addr, source_addr_ton, source_addr_npi)"
                " VALUES (4, NULL, 1, 'r1', 'viettel', '84327000686', 1, 1, 'hi', 'queued', 0,"
                " '2024-11-21 03:00:01', '2024-11-21 03:00:01', 'VssID', 5, 0)",
            )
            _insert(
                conn,
                "INSERT INTO charges (id, inbound_id, outbound_id, channel, carrier, amount_vnd,"
                " mode, state, created_at) VALUES (10, NULL, 4, 'api:vssid-app', 'viettel',"
                " 300, 'mt', 'pending', '2024-11-21 03:00:01')",
            )
        refused = (
            # the same client_ref twice
            "INSERT INTO outbound_messages (inbound_id, client_id, client_ref, carrier,"
            " destination_addr, dest_addr_ton, dest_addr_npi, body, state, attempts,"
            " next_attempt_at, created_at) VALUES (NULL, 1, 'r1', 'viettel', '84327000686',"
            " 1, 1, 'hi', 'queued', 0, '2024-11-21 03:00:01', '2024-11-21 03:00:01')",
            # an outbound row with neither an MO nor a client
            "INSERT INTO outbound_messages (inbound_id, carrier, destination_addr,"
            " dest_addr_ton, dest_addr_npi, body, state, attempts, next_attempt_at,"
            " created_at) VALUES (NULL, 'viettel', '84327000686', 1, 1, 'hi', 'queued', 0,"
            " '2024-11-21 03:00:01', '2024-11-21 03:00:01')",
            # a second charge for the same MT
            "INSERT INTO charges (inbound_id, outbound_id, carrier, amount_vnd, mode, state,"
            " created_at) VALUES (NULL, 4, 'viettel', 300, 'mt', 'pending',"
            " '2024-11-21 03:00:01')",
            # a charge of nothing
            "INSERT INTO charges (inbound_id, outbound_id, carrier, amount_vnd, mode, state,"
            " created_at) VALUES (NULL, NULL, 'viettel', 300, 'mt', 'pending',"
            " '2024-11-21 03:00:01')",
        )
        for sql in refused:
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                _insert(conn, sql)
    finally:
        engine.dispose()


def test_0003_downgrades_to_0002_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
        assert "api_clients" not in names and "api_callbacks" not in names
    finally:
        engine.dispose()
    assert upgrade(db_url) == "0003"
