"""``commit_api_reset`` on SQLite and PostgreSQL: the call's row and the
password in one transaction, no reply and no charge; the row counts in the
limits of every channel and is never the original of an MO."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import attrs
import pytest
import sqlalchemy as sa

from smscd.reset import VIETNAM_TZ, ChargingMode, Decision, InboundState, Outcome
from smscd.store.types import StoreError
from tests.store.helpers import CODE, PHONE, T0, add_account, add_mo, new_mo, rows

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore

HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"


def _client(store: SqlStore) -> int:
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_clients (name, token_hash, scopes, rate_per_s, created_at)"
                " VALUES ('hotline', :h, 'resets', 10, '2024-11-21 03:00:00.000000')"
            ),
            {"h": "f" * 64},
        )
        client_id = conn.execute(sa.text("SELECT id FROM api_clients")).scalar_one()
    assert isinstance(client_id, int)
    return client_id


def _decision(outcome: Outcome = Outcome.RESET_OK, code: str | None = CODE) -> Decision:
    reset = outcome is Outcome.RESET_OK
    return Decision(
        inbound_id=0,
        outcome=outcome,
        bhxh_code=code,
        reply_text="not stored",
        password_hash=HASH if reset else None,
        charge_vnd=1000,
        charging=ChargingMode.MO,
        decided_at=T0 + timedelta(seconds=1),
    )


def _commit(store: SqlStore, decision: Decision, client_id: int, channel: str = "hotline") -> int:
    return store.commit_api_reset(
        decision,
        msisdn=PHONE,
        text=f"BH MK {decision.bhxh_code or '12345'}",
        channel=channel,
        client_id=client_id,
        received_at=T0,
    )


def test_a_reset_is_recorded_with_its_password_and_nothing_else(store: SqlStore) -> None:
    add_account(store)
    client_id = _client(store)
    call_id = _commit(store, _decision(), client_id)
    assert rows(
        store,
        "SELECT id, carrier, source_addr, source_addr_ton, source_addr_npi, msisdn,"
        " destination_addr, text, state, outcome, bhxh_code, channel, client_id,"
        " claimed_by FROM inbound_messages",
    ) == [
        (
            call_id,
            "api",
            PHONE,
            1,
            1,
            PHONE,
            "api",
            f"BH MK {CODE}",
            "decided",
            "reset_ok",
            CODE,
            "hotline",
            client_id,
            None,
        )
    ]
    account = store.find_account(CODE)
    assert account is not None
    assert (account.password_hash, account.must_change) == (HASH, True)
    assert rows(store, "SELECT count(*) FROM outbound_messages") == [(0,)]
    assert rows(store, "SELECT count(*) FROM charges") == [(0,)]
    # Never RECEIVED: recovery has nothing to take up.
    assert store.recover_inbound(limit=10, now=T0, stale_s=0) == ([], [])
    # The status page counts the reset under the carrier "api"; the charges
    # report leaves the call out (no MO, no charge).
    day = T0.astimezone(VIETNAM_TZ).date()
    assert [(a.carrier, a.resets, a.charges_vnd) for a in store.daily_activity(start=day)] == [
        ("api", 1, 0)
    ]
    assert store.charges_report(start=None, end=None) == []


def test_a_refusal_changes_no_account(store: SqlStore) -> None:
    add_account(store)
    client_id = _client(store)
    _commit(store, _decision(Outcome.MISMATCH), client_id)
    _commit(store, _decision(Outcome.INVALID_CODE, code=None), client_id)
    assert rows(store, "SELECT outcome, bhxh_code FROM inbound_messages ORDER BY id") == [
        ("mismatch", CODE),
        ("invalid_code", None),
    ]
    account = store.find_account(CODE)
    assert account is not None
    assert (account.password_hash, account.must_change) == (None, False)


def test_a_failed_password_update_takes_the_row_back(store: SqlStore) -> None:
    client_id = _client(store)  # and no account for the code
    with pytest.raises(StoreError, match="no account"):
        _commit(store, _decision(), client_id)
    assert rows(store, "SELECT count(*) FROM inbound_messages") == [(0,)]


def test_a_reset_without_its_hash_is_refused(store: SqlStore) -> None:
    add_account(store)
    client_id = _client(store)
    with pytest.raises(ValueError, match="password hash"):
        _commit(store, attrs.evolve(_decision(), password_hash=None), client_id)
    assert rows(store, "SELECT count(*) FROM inbound_messages") == [(0,)]


def test_api_resets_and_mo_resets_share_the_counts(store: SqlStore) -> None:
    add_account(store)
    client_id = _client(store)
    _commit(store, _decision(), client_id, channel="hotline")
    _commit(store, _decision(), client_id, channel="app")
    mo = add_mo(store, carrier="viettel", at=T0)
    store.commit_decision(
        Decision(
            inbound_id=mo.id,
            outcome=Outcome.RESET_OK,
            bhxh_code=CODE,
            reply_text="reply",
            password_hash=HASH,
            charge_vnd=1000,
            charging=ChargingMode.MO,
            decided_at=T0 + timedelta(seconds=2),
        )
    )
    counts = store.reset_counts(msisdn=PHONE, bhxh_code=CODE, day_start=T0, month_start=T0)
    assert (counts.phone_day, counts.phone_month, counts.code_day, counts.code_month) == (
        3,
        3,
        3,
        3,
    )


def test_an_mo_is_never_taken_for_a_redelivery_of_a_call(store: SqlStore) -> None:
    add_account(store)
    client_id = _client(store)
    _commit(store, _decision(Outcome.MISMATCH), client_id)
    (stored,) = store.store_inbound(
        [new_mo(carrier="viettel", text=f"BH MK {CODE}", at=T0 + timedelta(seconds=5))],
        duplicate_window_s=120,
    )
    assert stored.state is InboundState.RECEIVED
