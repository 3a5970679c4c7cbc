"""SQLAlchemy 2 models of the smscd store (the schema; repositories live in ``sql``).

Theory of operation
-------------------
One row per thing that happened, linked by foreign keys:

    accounts                      the 21.6 million subscribers (imported, upserted)
    inbound_messages  (MO)  1──1  outbound_messages (the one reply)  1──n  outbound_message_ids
                            1──1  charges (the one charge)
    receipts  n──1 outbound_messages (nullable: a receipt may come first)  1──n  receipt_id_keys
    api_clients       1──n  outbound_messages (an API client's MT: no MO)  1──1  charges
                                                                           1──1  api_callbacks
                      1──n  inbound_messages (the API's reset calls, channel != 'sms')

Invariant 3 (one reply per MO) and 5 (one charge per MO) are UNIQUE constraints
on ``inbound_id``, so the database refuses a second reply or charge whatever the
code above it does; an API client's MT has no MO (``inbound_id`` NULL), is
unique per (``client_id``, ``client_ref``), and its charge is UNIQUE on
``outbound_id``. Enum-like columns are short strings with CHECK constraints
(readable in ``psql`` and SQLite alike). Datetimes go through :class:`UtcDateTime`:
``timestamptz`` on PostgreSQL, an ISO string of the naive UTC instant on SQLite
(so that string comparison is time comparison there).

Any change here needs a new migration under ``migrations/versions``; a test
checks that the models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "AccountRow",
    "ApiCallbackRow",
    "ApiClientRow",
    "Base",
    "ChargeRow",
    "InboundRow",
    "OutboundIdRow",
    "OutboundRow",
    "ReceiptKeyRow",
    "ReceiptRow",
    "UtcDateTime",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: ``YYYY-MM-DD HH:MM:SS.ffffff``: an aware UTC isoformat without its ``+00:00``.
_ISO_LENGTH = 26


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware values")
    return value.astimezone(UTC)


def _sqlite_text(value: datetime) -> str:
    """The stored form on SQLite; no conversion for a value already in UTC."""
    if value.tzinfo is not UTC:
        value = _as_utc(value)
    return value.isoformat(" ", "microseconds")[:_ISO_LENGTH]


class _SqliteIsoDateTime(sqlite.DATETIME):
    """SQLite's DATETIME column whose values :class:`UtcDateTime` already turned
    into (and reads back from) its ISO strings: no second conversion on the way
    in or out. The strings are those of SQLAlchemy's own SQLite DATETIME
    (``YYYY-MM-DD HH:MM:SS.ffffff``), so rows written either way read the same."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect.

    Refuses naive datetimes on the way in (a naive value is a bug upstream);
    always returns aware UTC datetimes on the way out. On SQLite the conversion
    to and from the stored string is done here, in one step with C-level
    ``isoformat``/``fromisoformat`` (on the hot path of every write, where the
    generic conversion, a %-format of a dict per value, costs more).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteIsoDateTime())  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _sqlite_text(value)
        return _as_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite: one closure, no second (impl) step.
        def process(value: datetime | None) -> str | None:
            return None if value is None else _sqlite_text(value)

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


INBOUND_STATES = ("received", "decided", "duplicate", "quarantined", "dropped")
OUTCOMES = ("reset_ok", "mismatch", "invalid_code", "bad_syntax", "rate_limited")
OUTBOUND_STATES = (
    "queued",
    "accepted",
    "delivered",
    "undeliverable",
    "failed",
    "expired",
    "quarantined",
)
CHARGE_MODES = ("mo", "mt")
CHARGE_STATES = ("final", "pending", "void")
#: The channel of an MO that came by SMS (``inbound_messages.channel``,
#: ``charges.channel``); an API client's MT is charged on ``api:<client name>``.
SMS_CHANNEL = "sms"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AccountRow(Base):
    __tablename__ = "accounts"
    # WITHOUT ROWID on SQLite: the 10-character code is the B-tree key, so an
    # upsert writes one tree instead of a table plus a separate unique index.
    __table_args__ = ({"sqlite_with_rowid": False},)

    bhxh_code: Mapped[str] = mapped_column(String(10), primary_key=True)
    phone: Mapped[str] = mapped_column(String(15))
    e_transaction: Mapped[bool] = mapped_column(Boolean)
    password_hash: Mapped[str | None] = mapped_column(Text)
    must_change: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InboundRow(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint(_in("state", INBOUND_STATES), name="state"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', OUTCOMES)}", name="outcome"),
        Index(None, "state", "id"),
        Index(None, "carrier", "msisdn", "received_at"),
        Index(None, "msisdn", "outcome", "decided_at"),
        Index(None, "bhxh_code", "outcome", "decided_at"),
        Index(None, "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    carrier: Mapped[str] = mapped_column(String(32))
    source_addr: Mapped[str] = mapped_column(String(21))
    source_addr_ton: Mapped[int] = mapped_column(Integer)
    source_addr_npi: Mapped[int] = mapped_column(Integer)
    msisdn: Mapped[str] = mapped_column(String(21))
    destination_addr: Mapped[str] = mapped_column(String(21))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    bhxh_code: Mapped[str | None] = mapped_column(String(10))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duplicate_of: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    #: The daemon process holding the MO while RECEIVED, and since when;
    #: ``claims`` counts the holders that stopped without finishing it.
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claims: Mapped[int] = mapped_column(Integer, server_default="0")
    #: Why the MO was quarantined: the stage, the reason and when.
    quarantine_stage: Mapped[str | None] = mapped_column(String(16))
    quarantine_reason: Mapped[str | None] = mapped_column(String(200))
    quarantined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: How the request came: ``sms`` (an MO to the short code) or the API
    #: channel of a ``POST /v1/resets`` (``hotline``, ``app``, ...).
    channel: Mapped[str] = mapped_column(String(16), server_default=SMS_CHANNEL)
    #: The API client that made the request; NULL for an MO.
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))


class OutboundRow(Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (
        CheckConstraint(_in("state", OUTBOUND_STATES), name="state"),
        CheckConstraint("inbound_id IS NOT NULL OR client_id IS NOT NULL", name="origin"),
        Index(None, "carrier", "state", "next_attempt_at"),
        Index(None, "created_at"),
        # Idempotence of POST /v1/messages: one row per (client, client_ref),
        # even when two requests race (NULLs, the replies to MOs, never clash).
        Index(None, "client_id", "client_ref", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The MO this is the reply to; NULL for an API client's MT.
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), unique=True)
    carrier: Mapped[str] = mapped_column(String(32))
    destination_addr: Mapped[str] = mapped_column(String(21))
    dest_addr_ton: Mapped[int] = mapped_column(Integer)
    dest_addr_npi: Mapped[int] = mapped_column(Integer)
    #: Plaintext only while queued; masked once accepted or failed.
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    smsc_message_id: Mapped[str | None] = mapped_column(String(80))
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    final_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: The daemon process holding the lease; ``claims`` counts the holders
    #: that stopped without a verdict.
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claims: Mapped[int] = mapped_column(Integer, server_default="0")
    quarantine_stage: Mapped[str | None] = mapped_column(String(16))
    quarantine_reason: Mapped[str | None] = mapped_column(String(200))
    quarantined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: The API client that sent it, and its reference; NULL for a reply to an MO.
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    client_ref: Mapped[str | None] = mapped_column(String(64))
    #: The sender id to submit with (the client's); NULL: the carrier's own
    #: source address, as for every reply to an MO.
    source_addr: Mapped[str | None] = mapped_column(String(21))
    source_addr_ton: Mapped[int | None] = mapped_column(Integer)
    source_addr_npi: Mapped[int | None] = mapped_column(Integer)


class OutboundIdRow(Base):
    """Every canonical form of an accepted message's SMSC id (hex, decimal, ...)."""

    __tablename__ = "outbound_message_ids"

    carrier: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    outbound_id: Mapped[int] = mapped_column(ForeignKey("outbound_messages.id"), index=True)


class ReceiptRow(Base):
    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    carrier: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(80))
    stat: Mapped[str] = mapped_column(String(16))
    err: Mapped[str] = mapped_column(String(16))
    final: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    #: NULL while unmatched (the receipt came before its submit_sm_resp was stored).
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"), index=True)


class ReceiptKeyRow(Base):
    """The id keys of a receipt, so that ``mark_accepted`` finds one that came first."""

    __tablename__ = "receipt_id_keys"
    __table_args__ = (Index(None, "carrier", "key"),)

    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("receipts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    carrier: Mapped[str] = mapped_column(String(32))


class ChargeRow(Base):
    __tablename__ = "charges"
    __table_args__ = (
        CheckConstraint(_in("mode", CHARGE_MODES), name="mode"),
        CheckConstraint(_in("state", CHARGE_STATES), name="state"),
        CheckConstraint("inbound_id IS NOT NULL OR outbound_id IS NOT NULL", name="origin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The MO charged (invariant 5); NULL for an API client's MT, which is
    #: charged through ``outbound_id`` instead (one charge per MT).
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), unique=True)
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"), unique=True)
    #: ``sms`` for an MO to the short code; ``api:<client name>`` for an API MT.
    channel: Mapped[str] = mapped_column(String(32), server_default=SMS_CHANNEL)
    carrier: Mapped[str] = mapped_column(String(32))
    amount_vnd: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(4))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiClientRow(Base):
    """A client of the HTTP API (``smscd clients add``).

    ``token_hash`` is the SHA-256 hex digest of the client's token. The tokens
    are 32 random bytes from ``secrets``, not passwords a person chose, so a
    fast hash is enough: nobody can search a 256-bit space, and a slow hash
    (argon2) would only cost time on every request."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Comma-separated: ``messages``, ``resets``.
    scopes: Mapped[str] = mapped_column(Text)
    #: The sender id of its MTs; NULL: the carrier's own source address.
    sender: Mapped[str | None] = mapped_column(String(21))
    sender_ton: Mapped[int] = mapped_column(Integer, server_default="0")
    sender_npi: Mapped[int] = mapped_column(Integer, server_default="0")
    price_vnd: Mapped[int] = mapped_column(Integer, server_default="0")
    rate_per_s: Mapped[float] = mapped_column(Float)
    callback_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiCallbackRow(Base):
    """A final state of an API message owed to its client's ``callback_url``:
    created with the final state (in the receipt's transaction), posted by the
    callback sender, retried with backoff until ``done_at`` is set."""

    __tablename__ = "api_callbacks"
    __table_args__ = (Index(None, "done_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: One callback per message: its first final state.
    outbound_id: Mapped[int] = mapped_column(ForeignKey("outbound_messages.id"), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: When it was delivered (a 2xx) or given up; NULL while owed.
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: ``delivered`` or ``abandoned`` once done.
    outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(200))
