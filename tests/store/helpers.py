"""Builders shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from smscd.reset import ChargingMode, Decision, InboundMessage, Outcome
from smscd.store.types import NewInbound

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore

T0 = datetime(2024, 11, 21, 3, 0, tzinfo=UTC)
CODE = "0123456789"
PHONE = "84327000686"
PASSWORD = "482913"
OK_TEXT = f"Cap lai mat khau thanh cong. Tai khoan: {CODE}/Mat khau: {PASSWORD}"
MISMATCH_TEXT = (
    "So dien thoai va ma so BHXH khong khop hoac chua dang ky giao dich dien tu voi co quan BHXH"
)


def new_mo(
    *,
    carrier: str = "viettel",
    msisdn: str = PHONE,
    source_addr: str = "0327000686",
    text: str = f"BH MK {CODE}",
    at: datetime = T0,
) -> NewInbound:
    return NewInbound(
        carrier=carrier,
        source_addr=source_addr,
        source_addr_ton=0,
        source_addr_npi=1,
        msisdn=msisdn,
        destination_addr="8079",
        text=text,
        received_at=at,
    )


def add_mo(
    store: SqlStore,
    *,
    carrier: str = "viettel",
    msisdn: str = PHONE,
    source_addr: str = "0327000686",
    text: str = f"BH MK {CODE}",
    at: datetime = T0,
) -> InboundMessage:
    mo = new_mo(carrier=carrier, msisdn=msisdn, source_addr=source_addr, text=text, at=at)
    (stored,) = store.store_inbound([mo], duplicate_window_s=0)
    return stored


def add_account(store: SqlStore, code: str = CODE, phone: str = PHONE) -> None:
    store.upsert_accounts([(code, phone, True)], now=T0)


def decision(
    mo: InboundMessage,
    *,
    outcome: Outcome = Outcome.RESET_OK,
    code: str | None = CODE,
    charging: ChargingMode = ChargingMode.MO,
    at: datetime | None = None,
    text: str | None = None,
) -> Decision:
    reset = outcome is Outcome.RESET_OK
    return Decision(
        inbound_id=mo.id,
        outcome=outcome,
        bhxh_code=code,
        reply_text=text or (OK_TEXT if reset else MISMATCH_TEXT),
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA" if reset else None,
        charge_vnd=1000,
        charging=charging,
        decided_at=at or mo.received_at + timedelta(milliseconds=50),
    )


def rows(store: SqlStore, sql: str, **params: object) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def scalar(store: SqlStore, sql: str, **params: object) -> object:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def statements_run(store: SqlStore) -> list[str]:
    """Every SQL text the store's SQLite connections run from now on (the
    list fills as they run), however it got there: SQLAlchemy's execution
    or the cursor's."""
    ran: list[str] = []

    @sa.event.listens_for(store.engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(ran.append)

    store.engine.dispose()  # new connections, traced
    return ran
