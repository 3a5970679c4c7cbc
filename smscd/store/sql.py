"""The SQL implementation of the store's Protocols (SQLite and PostgreSQL).

Theory of operation
-------------------
Every public method is one short transaction on a pooled connection, written
with SQLAlchemy Core against the models (no ORM session, no identity map: the
rows become the attrs values of ``smscd.store.types`` right here, and only
here). Writing methods begin with ``BEGIN IMMEDIATE`` on SQLite (see
``_engine``); any database error rolls the transaction back and surfaces as
``StoreUnavailable``, or ``StoreRejected`` when the data itself was refused (a
value too long or not encodable, a constraint), with the statement's parameters
hidden: they may carry a password.

The daemon writes in batches (its group commits): ``commit_inbound`` (the MOs
and receipts an SMSC delivered, with the decisions that can be made at once),
``commit_decisions`` and ``mark_accepted_many`` take many rows and spend one
transaction and a handful of statements on all of them (statements built once
at import, ``executemany`` for independent rows; on SQLite the new rows' ids
are numbered inside the transaction, see ``_insert_numbered``); the one-row
methods are batches of one. On SQLite the writing threads of one
process queue on a lock of the store before ``BEGIN IMMEDIATE``, not in
SQLite's busy handler, which sleeps between retries, and the statements
marked ``prepared`` run on the DBAPI cursor, compiled once (``_cursor``):
methods execute on a ``Statements``, which picks the way per statement.

The invariants of DESIGN.md that live here:

* (1) ``store_inbound`` and ``commit_inbound`` commit the batch before
  returning; the daemon acks after.
* (2) ``commit_decision`` flips the MO from ``received`` to ``decided`` with a
  conditional UPDATE (so two workers or two daemons can't both decide it),
  updates the password, queues the reply and records the charge, all in one
  transaction.
* (3)/(5) UNIQUE(inbound_id) on ``outbound_messages`` and ``charges``.
* (4) ``mark_accepted`` and ``mark_failed`` mask the reply body: the only
  plaintext password at rest is in a reply still waiting to be submitted.

Receipts are matched by (carrier, key) over every canonical form of the SMSC's
message id (hex/decimal). A receipt that arrives before its submit_sm_resp was
committed is stored unmatched with its keys; ``mark_accepted`` looks them up
and applies it, so the order of the two does not matter.
"""

from __future__ import annotations

import secrets
import threading
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import (
    Date,
    Insert,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from smscd.store._bulk import AccountImport, open_account_import
from smscd.store._containment import Containment
from smscd.store._cursor import DBAPI_ERRORS, Plans, Statements, prepared
from smscd.store._engine import (
    DatabaseMissing,
    SchemaNotCurrent,
    create_store_engine,
    masked_url,
    sqlite_path,
)
from smscd.store._masking import mask_body
from smscd.store.migrate import current_revision_of, head_revision, upgrade
from smscd.store.models import (
    AccountRow,
    ChargeRow,
    InboundRow,
    OutboundIdRow,
    OutboundRow,
    ReceiptKeyRow,
    ReceiptRow,
    UtcDateTime,
)
from smscd.store.types import (
    Account,
    AlreadyDecided,
    ChargingMode,
    Decision,
    EarlyReceipt,
    InboundMessage,
    InboundState,
    NewInbound,
    NewReceipt,
    OutboundMessage,
    OutboundState,
    Outcome,
    ReceiptMatch,
    ResetCounts,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from sqlalchemy.engine import Engine

__all__ = [
    "VIETNAM_TZ",
    "AccountDetails",
    "AccountImport",
    "ActivityDay",
    "ChargesDay",
    "InboundCommit",
    "PruneCounts",
    "ReceiptsDay",
    "SchemaNotCurrent",
    "SqlStore",
    "mask_body",
    "masked_url",
    "open_store",
    "sqlite_path",
]

#: Reports count days in Vietnam (UTC+7 all year, no daylight saving).
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
_LOCAL_OFFSET_HOURS = 7

#: Prune works through this many MOs per transaction.
PRUNE_BATCH = 5000


@attrs.frozen(kw_only=True)
class PruneCounts:
    inbound: int
    outbound: int
    receipts: int
    charges: int


@attrs.frozen(kw_only=True)
class AccountDetails:
    """What ``smscd accounts show`` prints (never the hash itself)."""

    bhxh_code: str
    phone: str
    e_transaction: bool
    must_change: bool
    password_set: bool
    password_changed_at: datetime | None
    updated_at: datetime


@attrs.frozen(kw_only=True)
class ChargesDay:
    """One (Vietnam day, carrier) row of the charges report."""

    day: date
    carrier: str
    #: MOs received that day, redeliveries (duplicates) excluded.
    mo_received: int
    #: MOs of that day with a final charge, and their total.
    charged: int
    amount_vnd: int
    #: MT-mode charges waiting for a receipt; voided charges.
    pending: int
    void: int


@attrs.frozen(kw_only=True)
class ReceiptsDay:
    """One (Vietnam day the reply was queued, carrier) row of the receipts report."""

    day: date
    carrier: str
    accepted: int
    delivered: int
    #: undeliverable (final failure receipt) + failed (submit rejected for good).
    failed: int
    #: accepted, no final receipt yet.
    pending: int


@attrs.frozen(kw_only=True)
class ActivityDay:
    """One (Vietnam day of the MO, carrier) of the status page's last 30 days."""

    day: date
    carrier: str
    #: MOs answered with a new password.
    resets: int
    #: Charges final or pending (voided ones left out), VND.
    charges_vnd: int


def _local_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    lo = datetime.combine(start, time(), VIETNAM_TZ) if start is not None else None
    hi = datetime.combine(end + timedelta(days=1), time(), VIETNAM_TZ) if end is not None else None
    return lo, hi


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


@attrs.frozen(kw_only=True)
class InboundCommit:
    """What ``SqlStore.commit_inbound`` committed."""

    #: Each MO as stored (its state as committed), its decision if one was made
    #: at once, and the outbound id of its reply (None where undecided).
    messages: list[tuple[InboundMessage, Decision | None, int | None]]
    #: Each receipt's reply (None: kept for mark_accepted).
    receipts: list[ReceiptMatch | None]
    #: Receipts stored earlier that the acceptances in this transaction matched.
    early: list[EarlyReceipt] = attrs.field(factory=list)


def _decided_params(decisions: Iterable[tuple[Decision, object]]) -> list[dict[str, Any]]:
    """The parameters of ``_DECIDE_MANY`` for these decisions."""
    return [
        {
            "mo_id": decision.inbound_id,
            "p_outcome": decision.outcome.value,
            "p_code": decision.bhxh_code,
            "p_at": decision.decided_at,
        }
        for decision, _mo in decisions
    ]


def _check_decisions(decisions: Iterable[Decision]) -> None:
    for decision in decisions:
        reset = decision.outcome is Outcome.RESET_OK
        if reset and (decision.password_hash is None or decision.bhxh_code is None):
            raise ValueError("a RESET_OK decision needs a code and a password hash")
        if not reset and decision.password_hash is not None:
            raise ValueError("only a RESET_OK decision carries a password hash")


# The pipeline's two reads (decision latency): statements built once, with
# bound parameters, so that a call costs a cache lookup instead of a build.
_FIND_ACCOUNT = prepared(
    select(
        AccountRow.phone,
        AccountRow.e_transaction,
        AccountRow.password_hash,
        AccountRow.must_change,
    ).where(AccountRow.bhxh_code == bindparam("code"))
)
_FIND_ACCOUNTS = prepared(
    select(
        AccountRow.bhxh_code,
        AccountRow.phone,
        AccountRow.e_transaction,
        AccountRow.password_hash,
        AccountRow.must_change,
    ).where(AccountRow.bhxh_code.in_(bindparam("codes", expanding=True)))
)


def _resets_since(column: Any, key: str, since: str) -> Any:
    return (
        select(func.count())
        .select_from(InboundRow)
        .where(
            column == bindparam(key),
            InboundRow.outcome == Outcome.RESET_OK.value,
            InboundRow.decided_at >= bindparam(since, type_=UtcDateTime()),
        )
        .scalar_subquery()
    )


_RESET_COUNTS = prepared(
    select(
        _resets_since(InboundRow.msisdn, "msisdn", "day"),
        _resets_since(InboundRow.msisdn, "msisdn", "month"),
        _resets_since(InboundRow.bhxh_code, "code", "day"),
        _resets_since(InboundRow.bhxh_code, "code", "month"),
    )
)


# The write path of the daemon (one transaction per batch, several rows each):
# statements built once, executed with bound parameters (and ``executemany``
# where the rows are independent).
_AT = UtcDateTime()

_RECENT_SAME_TEXT = prepared(
    select(
        InboundRow.id,
        InboundRow.duplicate_of,
        InboundRow.carrier,
        InboundRow.msisdn,
        InboundRow.text,
        InboundRow.received_at,
    ).where(
        InboundRow.carrier.in_(bindparam("carriers", expanding=True)),
        InboundRow.msisdn.in_(bindparam("msisdns", expanding=True)),
        InboundRow.received_at >= bindparam("lo", type_=_AT),
        InboundRow.received_at <= bindparam("hi", type_=_AT),
    )
)
_INSERT_INBOUND = prepared(insert(InboundRow))
_POINT_TO_ORIGINAL = prepared(
    update(InboundRow)
    .where(InboundRow.id == bindparam("mo_id"))
    .values(duplicate_of=bindparam("p_original"))
)

_DECIDE = prepared(
    update(InboundRow)
    .where(
        InboundRow.id == bindparam("mo_id"),
        InboundRow.state == InboundState.RECEIVED.value,
    )
    .values(
        state=InboundState.DECIDED.value,
        outcome=bindparam("p_outcome"),
        bhxh_code=bindparam("p_code"),
        decided_at=bindparam("p_at", type_=_AT),
    )
    .returning(
        InboundRow.carrier,
        InboundRow.source_addr,
        InboundRow.source_addr_ton,
        InboundRow.source_addr_npi,
    )
)
_INBOUND_STATE = prepared(select(InboundRow.state).where(InboundRow.id == bindparam("mo_id")))
_UNDECIDED = prepared(
    select(
        InboundRow.id,
        InboundRow.carrier,
        InboundRow.source_addr,
        InboundRow.source_addr_ton,
        InboundRow.source_addr_npi,
    ).where(
        InboundRow.id.in_(bindparam("ids", expanding=True)),
        InboundRow.state == InboundState.RECEIVED.value,
    )
)
_DECIDE_MANY = prepared(
    update(InboundRow)
    .where(
        InboundRow.id == bindparam("mo_id"),
        InboundRow.state == InboundState.RECEIVED.value,
    )
    .values(
        state=InboundState.DECIDED.value,
        outcome=bindparam("p_outcome"),
        bhxh_code=bindparam("p_code"),
        decided_at=bindparam("p_at", type_=_AT),
    )
)
_p_changed_at = bindparam("p_at", type_=_AT)
_SET_PASSWORD = prepared(
    update(AccountRow)
    .where(AccountRow.bhxh_code == bindparam("p_code"))
    .values(
        password_hash=bindparam("p_hash"),
        must_change=True,
        password_changed_at=_p_changed_at,
        updated_at=_p_changed_at,
    )
)
_QUEUE_REPLY = prepared(insert(OutboundRow))
_RECORD_CHARGE = prepared(insert(ChargeRow))

_FOR_ACCEPT = prepared(
    select(
        OutboundRow.id,
        OutboundRow.carrier,
        OutboundRow.state,
        OutboundRow.body,
        OutboundRow.inbound_id,
        OutboundRow.destination_addr,
    ).where(OutboundRow.id.in_(bindparam("ids", expanding=True)))
)
_ACCEPT = prepared(
    update(OutboundRow)
    .where(
        OutboundRow.id == bindparam("oid"),
        OutboundRow.state == OutboundState.QUEUED.value,
    )
    .values(
        state=OutboundState.ACCEPTED.value,
        attempts=OutboundRow.attempts + 1,
        body=bindparam("p_body"),
        smsc_message_id=bindparam("p_message_id"),
        accepted_at=bindparam("p_at", type_=_AT),
        lease_until=None,
    )
)
_EARLY_RECEIPTS = prepared(
    select(
        ReceiptKeyRow.carrier,
        ReceiptKeyRow.key,
        ReceiptRow.id,
        ReceiptRow.stat,
        ReceiptRow.final,
        ReceiptRow.received_at,
    )
    .join(ReceiptRow, ReceiptRow.id == ReceiptKeyRow.receipt_id)
    .where(
        ReceiptRow.outbound_id.is_(None),
        ReceiptKeyRow.carrier.in_(bindparam("carriers", expanding=True)),
        ReceiptKeyRow.key.in_(bindparam("keys", expanding=True)),
    )
    .order_by(ReceiptRow.id)
)
_MATCH_RECEIPT = prepared(
    update(ReceiptRow).where(ReceiptRow.id == bindparam("rid")).values(outbound_id=bindparam("oid"))
)

_OWNERS_OF_KEYS = prepared(
    select(
        OutboundIdRow.carrier,
        OutboundIdRow.key,
        OutboundIdRow.outbound_id,
        OutboundRow.inbound_id,
        OutboundRow.destination_addr,
    )
    .join(OutboundRow, OutboundRow.id == OutboundIdRow.outbound_id)
    .where(
        OutboundIdRow.carrier.in_(bindparam("carriers", expanding=True)),
        OutboundIdRow.key.in_(bindparam("keys", expanding=True)),
    )
)
_INSERT_RECEIPT = prepared(insert(ReceiptRow))
_INSERT_RECEIPT_KEY = prepared(insert(ReceiptKeyRow))
_SETTLE_CHARGE = prepared(
    update(ChargeRow)
    .where(
        ChargeRow.inbound_id == bindparam("iid"),
        ChargeRow.mode == ChargingMode.MT.value,
        ChargeRow.state == "pending",
    )
    .values(state=bindparam("p_state"), finalized_at=bindparam("p_at", type_=_AT))
)
# A final receipt of an ACCEPTED reply, and the MT charge of the MO behind it
# (``_finish_replies``; ``_SETTLE_CHARGE`` is the form by MO, for a reply the
# SMSC rejected). The charge statement
# needs no "the reply was ACCEPTED" condition: a reply that has id keys (and so
# can match a receipt) was ACCEPTED, and one that is no longer ACCEPTED has a
# charge that is no longer pending.
_FINISH_ACCEPTED = prepared(
    update(OutboundRow)
    .where(
        OutboundRow.id == bindparam("oid"),
        OutboundRow.state == OutboundState.ACCEPTED.value,
    )
    .values(state=bindparam("p_state"), final_at=bindparam("p_at", type_=_AT))
)
_SETTLE_CHARGE_OF_REPLY = prepared(
    update(ChargeRow)
    .where(
        ChargeRow.inbound_id
        == select(OutboundRow.inbound_id)
        .where(OutboundRow.id == bindparam("oid"))
        .scalar_subquery(),
        ChargeRow.mode == ChargingMode.MT.value,
        ChargeRow.state == "pending",
    )
    .values(state=bindparam("p_charge"), finalized_at=bindparam("p_at", type_=_AT))
)


def _own_keys(insert: Any) -> Any:
    """An accepted reply's id keys (the last reply to get a key owns it): an
    upsert, in the dialect's own form."""
    ins = insert(OutboundIdRow.__table__)
    return ins.on_conflict_do_update(
        index_elements=["carrier", "key"], set_={"outbound_id": ins.excluded.outbound_id}
    )


_OWN_KEYS_SQLITE = prepared(_own_keys(sqlite.insert))
_OWN_KEYS_PG = _own_keys(postgresql.insert)

#: The id a new row of each table gets on SQLite (see ``_insert_numbered``).
_LAST_ID = {
    table: prepared(select(func.max(table.c.id)))
    for table in (InboundRow.__table__, OutboundRow.__table__, ReceiptRow.__table__)
}


#: DBAPI errors (PEP 249 names) that say the data itself was refused.
_REJECTED_DATA = frozenset({"DataError", "IntegrityError"})


def _unavailable(exc: Exception) -> StoreError:
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


class SqlStore(Containment):
    """``ResetStore``, ``DecisionStore``, ``IntakeStore`` and ``OutboxStore`` over
    one SQLAlchemy engine.

    Thread-safe in the way the daemon uses it: each call checks a connection
    out of the pool for its own transaction. Build it with :func:`open_store`.
    """

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
        self._own_keys = _OWN_KEYS_PG if self._postgres else _OWN_KEYS_SQLITE
        # The engine's connections for the store's writes and one-statement reads
        # (see _engine: how each begins); options set once here, not per
        # connection, which cost a dialect call each time.
        self._writing = engine.execution_options(smscd_write=True)
        self._reading = engine.execution_options(smscd_read=True)
        #: SQLite: the prepared statements, compiled for the DBAPI cursor.
        self._plans = Plans(engine.dialect) if engine.dialect.name == "sqlite" else None

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return masked_url(self._url)

    def close(self) -> None:
        self._engine.dispose()

    def checkpoint(self) -> None:
        """SQLite: copy the WAL into the database and truncate it, so page images
        of replies that were queued (plaintext) and are now masked do not linger
        on disk; freed space is zeroed by ``secure_delete``. PostgreSQL: nothing
        (its dead tuples are autovacuum's business)."""
        if self._engine.dialect.name != "sqlite":
            return
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc

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
                yield statements
        except (SQLAlchemyError, *DBAPI_ERRORS, UnicodeError, OverflowError) as exc:
            # UnicodeError, OverflowError: a value the driver could not bind.
            raise _unavailable(exc) from exc

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
            raise _unavailable(exc) from exc

    def _insert_numbered(
        self, conn: Statements, stmt: Insert, rows: list[dict[str, Any]]
    ) -> list[int]:
        """INSERT ``rows`` (the table's ``id`` is generated) and return their new
        ids, in the order of ``rows``.

        PostgreSQL: one batched INSERT ... RETURNING, which SQLAlchemy orders.
        SQLite has no ordered form of that, and SQLAlchemy falls back to one
        INSERT per row (measured: a third of the store's cost per MO). So on
        SQLite the ids are numbered here, from ``max(id) + 1``: what SQLite
        picks itself for an INTEGER PRIMARY KEY without AUTOINCREMENT, and no
        one else can insert meanwhile, as the write transaction holds the
        database's lock from its BEGIN IMMEDIATE. One executemany then."""
        table = stmt.table
        if self._postgres:
            returning = stmt.returning(table.c.id, sort_by_parameter_order=True)
            return list(conn.execute(returning, rows).scalars())
        last = conn.execute(_LAST_ID[table]).scalar() or 0
        ids = list(range(last + 1, last + 1 + len(rows)))
        conn.execute(stmt, [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
        return ids

    # -- ResetStore -----------------------------------------------------------

    def find_account(self, bhxh_code: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(_FIND_ACCOUNT, {"code": bhxh_code}).first()
        if row is None:
            return None
        return Account(
            bhxh_code=bhxh_code,
            phone=row.phone,
            e_transaction=bool(row.e_transaction),
            password_hash=row.password_hash,
            must_change=bool(row.must_change),
        )

    def find_accounts(self, bhxh_codes: Iterable[str]) -> dict[str, Account | None]:
        """``find_account`` for several codes in one query (a decision batch):
        every code asked for is a key, None where there is no account."""
        codes = sorted(set(bhxh_codes))
        found: dict[str, Account | None] = dict.fromkeys(codes)
        if not codes:
            return found
        with self._read() as conn:
            for row in conn.execute(_FIND_ACCOUNTS, {"codes": codes}):
                found[row.bhxh_code] = Account(
                    bhxh_code=row.bhxh_code,
                    phone=row.phone,
                    e_transaction=bool(row.e_transaction),
                    password_hash=row.password_hash,
                    must_change=bool(row.must_change),
                )
        return found

    def account_details(self, bhxh_code: str) -> AccountDetails | None:
        stmt = select(AccountRow).where(AccountRow.bhxh_code == bhxh_code)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return AccountDetails(
            bhxh_code=row.bhxh_code,
            phone=row.phone,
            e_transaction=bool(row.e_transaction),
            must_change=bool(row.must_change),
            password_set=row.password_hash is not None,
            password_changed_at=row.password_changed_at,
            updated_at=row.updated_at,
        )

    def reset_counts(
        self, *, msisdn: str, bhxh_code: str, day_start: datetime, month_start: datetime
    ) -> ResetCounts:
        params = {"msisdn": msisdn, "code": bhxh_code, "day": day_start, "month": month_start}
        with self._read() as conn:
            row = conn.execute(_RESET_COUNTS, params).one()
        return ResetCounts(
            phone_day=int(row[0]),
            phone_month=int(row[1]),
            code_day=int(row[2]),
            code_month=int(row[3]),
        )

    def commit_decision(self, decision: Decision) -> int:
        (outbound_id,) = self.commit_decisions([decision])
        if outbound_id is None:
            with self._read() as conn:
                exists = conn.execute(_INBOUND_STATE, {"mo_id": decision.inbound_id}).first()
            if exists is None:
                raise StoreError(f"no inbound message {decision.inbound_id}")
            raise AlreadyDecided(
                f"inbound message {decision.inbound_id} is {exists.state}, not received"
            )
        return outbound_id

    def commit_decisions(
        self, decisions: Sequence[Decision], *, lease_s: float | None = None
    ) -> list[int | None]:
        """``commit_decision`` for several MOs in ONE transaction (the daemon's
        group commit). Returns each decision's outbound id, or None for an MO
        that is not RECEIVED (already decided, or unknown): nothing was written
        for that one. Any other failure (a RESET_OK for a code with no account,
        a database error) rolls back the whole batch and raises.

        With ``lease_s`` the queued replies are born leased to the caller, who
        submits them itself (no claim needed); if it dies first, the lease runs
        out and any claimer sends them."""
        _check_decisions(decisions)
        if not decisions:
            return []
        with self._write() as conn:
            flipped = (
                self._flip_one(conn, decisions[0])
                if len(decisions) == 1
                else self._flip_many(conn, decisions)
            )
            results = self._apply_decisions(conn, flipped, lease_s=lease_s)
        # The first decision of an MO wins; a second one in the same batch is None.
        answers: list[int | None] = []
        for decision in decisions:
            answers.append(results.pop(decision.inbound_id, None))
        return answers

    def _apply_decisions(
        self,
        conn: Statements,
        flipped: Sequence[tuple[Decision, InboundMessage | Any]],
        *,
        lease_s: float | None,
    ) -> dict[int, int]:
        """The writes of decisions whose MOs were just flipped to DECIDED: the new
        passwords, the queued replies, the charges. Returns the outbound id of
        each MO id."""
        if not flipped:
            return {}
        for decision, _mo in flipped:
            if decision.outcome is not Outcome.RESET_OK:
                continue
            changed = conn.execute(
                _SET_PASSWORD,
                {
                    "p_code": decision.bhxh_code,
                    "p_hash": decision.password_hash,
                    "p_at": decision.decided_at,
                },
            ).rowcount
            if changed != 1:
                raise StoreError(f"no account {decision.bhxh_code} to reset")
        rows = [
            {
                "inbound_id": decision.inbound_id,
                "carrier": mo.carrier,
                "destination_addr": mo.source_addr,
                "dest_addr_ton": mo.source_addr_ton,
                "dest_addr_npi": mo.source_addr_npi,
                "body": decision.reply_text,
                "state": OutboundState.QUEUED.value,
                "attempts": 0,
                "next_attempt_at": decision.decided_at,
                "created_at": decision.decided_at,
                "lease_until": (
                    None if lease_s is None else decision.decided_at + timedelta(seconds=lease_s)
                ),
                "claimed_by": None if lease_s is None else self.owner,
            }
            for decision, mo in flipped
        ]
        ids = self._insert_numbered(conn, _QUEUE_REPLY, rows)
        results = {
            decision.inbound_id: new_id
            for (decision, _mo), new_id in zip(flipped, ids, strict=True)
        }
        conn.execute(
            _RECORD_CHARGE,
            [
                {
                    "inbound_id": decision.inbound_id,
                    "carrier": mo.carrier,
                    "amount_vnd": decision.charge_vnd,
                    "mode": decision.charging.value,
                    "state": "final" if decision.charging is ChargingMode.MO else "pending",
                    "created_at": decision.decided_at,
                    "finalized_at": (
                        decision.decided_at if decision.charging is ChargingMode.MO else None
                    ),
                }
                for decision, mo in flipped
            ],
        )
        return results

    @staticmethod
    def _flip_one(conn: Statements, decision: Decision) -> list[tuple[Decision, Any]]:
        """RECEIVED -> DECIDED for one MO: one conditional UPDATE ... RETURNING."""
        mo = conn.execute(
            _DECIDE,
            {
                "mo_id": decision.inbound_id,
                "p_outcome": decision.outcome.value,
                "p_code": decision.bhxh_code,
                "p_at": decision.decided_at,
            },
        ).first()
        return [] if mo is None else [(decision, mo)]

    def _flip_many(
        self, conn: Statements, decisions: Sequence[Decision]
    ) -> list[tuple[Decision, Any]]:
        """RECEIVED -> DECIDED for a batch: which MOs are still RECEIVED (one
        SELECT; the transaction holds SQLite's write lock, and on PostgreSQL the
        rows are locked FOR UPDATE, so no one else decides them meanwhile), then
        one executemany UPDATE (still conditional). The first decision of an MO
        in the batch wins."""
        stmt = _UNDECIDED.with_for_update() if self._postgres else _UNDECIDED
        rows = {
            row.id: row
            for row in conn.execute(stmt, {"ids": sorted({d.inbound_id for d in decisions})})
        }
        flipped: list[tuple[Decision, Any]] = []
        for decision in decisions:
            row = rows.pop(decision.inbound_id, None)
            if row is not None:
                flipped.append((decision, row))
        if flipped:
            result = conn.execute(_DECIDE_MANY, _decided_params(flipped))
            if result.rowcount not in (-1, len(flipped)):
                raise StoreError("inbound messages changed state while being decided")
        return flipped

    # -- IntakeStore ----------------------------------------------------------

    def store_inbound(
        self, batch: Sequence[NewInbound], *, duplicate_window_s: float
    ) -> list[InboundMessage]:
        if not batch:
            return []
        with self._write() as conn:
            return self._insert_inbound(conn, batch, duplicate_window_s=duplicate_window_s)

    def commit_inbound(
        self,
        batch: Sequence[NewInbound],
        receipts: Sequence[NewReceipt] = (),
        *,
        duplicate_window_s: float,
        decide: Callable[[Sequence[InboundMessage]], Sequence[Decision | None]],
        lease_s: float | None = None,
        accepted: Sequence[tuple[int, str, frozenset[str]]] = (),
        now: datetime | None = None,
    ) -> InboundCommit:
        """What an SMSC delivered, in ONE transaction (the daemon's intake):
        ``store_inbound`` of the MOs, the decisions ``decide`` can make at once,
        ``mark_accepted_many`` of the SMSC's acceptances (``accepted``, at
        ``now``; an id with no reply is left out), then ``record_receipts`` of
        the receipts, which so find the replies accepted with them.

        ``decide`` is called inside the transaction with the batch's new
        RECEIVED MOs (duplicates left out) and returns a Decision, or None for
        an MO to leave RECEIVED (to be decided later). It must not hash (no
        RESET_OK: a new password waits for no transaction); an exception from it
        rolls the whole batch back. One transaction instead of three for the
        MOs answered at once and the receipts that came with them."""
        if not batch and not receipts and not accepted:
            return InboundCommit(messages=[], receipts=[])
        with self._write() as conn:
            stored = (
                self._insert_inbound(conn, batch, duplicate_window_s=duplicate_window_s)
                if batch
                else []
            )
            fresh = [mo for mo in stored if mo.state is InboundState.RECEIVED]
            decided = [
                (decision, mo)
                for mo, decision in zip(fresh, decide(fresh) if fresh else [], strict=True)
                if decision is not None
            ]
            _check_decisions(decision for decision, _mo in decided)
            if any(decision.outcome is Outcome.RESET_OK for decision, _mo in decided):
                raise ValueError("commit_inbound does not take a RESET_OK decision")
            if decided:
                conn.execute(_DECIDE_MANY, _decided_params(decided))
            outbound = self._apply_decisions(conn, decided, lease_s=lease_s)
            early: list[EarlyReceipt] = []
            if accepted:
                early = self._mark_accepted(conn, accepted, now=now or datetime.now(UTC))[1]
            matched = self._record_receipts(conn, receipts)
        decisions = {mo.id: decision for decision, mo in decided}
        return InboundCommit(
            messages=[
                (
                    attrs.evolve(mo, state=InboundState.DECIDED, outcome=decisions[mo.id].outcome)
                    if mo.id in decisions
                    else mo,
                    decisions.get(mo.id),
                    outbound.get(mo.id),
                )
                for mo in stored
            ],
            receipts=matched,
            early=early,
        )

    def _insert_inbound(
        self, conn: Statements, batch: Sequence[NewInbound], *, duplicate_window_s: float
    ) -> list[InboundMessage]:
        window = timedelta(seconds=duplicate_window_s)
        # The original of each MO if it is a redelivery: (False, id) of a stored
        # MO, or (True, index) of an MO earlier in this batch (its id is known
        # only after the insert; its redeliveries point at it right after).
        originals: list[tuple[bool, int] | None] = []
        if duplicate_window_s > 0:
            seen: dict[tuple[str, str, str], list[tuple[datetime, tuple[bool, int]]]] = {}
            earlier = conn.execute(
                _RECENT_SAME_TEXT,
                {
                    "carriers": sorted({mo.carrier for mo in batch}),
                    "msisdns": sorted({mo.msisdn for mo in batch}),
                    "lo": min(mo.received_at for mo in batch) - window,
                    "hi": max(mo.received_at for mo in batch),
                },
            ).all()
            for row in sorted(earlier, key=lambda r: r.id):
                seen.setdefault((row.carrier, row.msisdn, row.text), []).append(
                    (row.received_at, (False, row.duplicate_of or row.id))
                )
            for index, mo in enumerate(batch):
                # The latest earlier MO of the same key within the window.
                original: tuple[bool, int] | None = None
                candidates = seen.setdefault((mo.carrier, mo.msisdn, mo.text), [])
                for at, ref in reversed(candidates):
                    if mo.received_at - window <= at <= mo.received_at:
                        original = ref
                        break
                candidates.append((mo.received_at, original or (True, index)))
                originals.append(original)
        else:
            originals = [None] * len(batch)
        ids = self._insert_numbered(
            conn,
            _INSERT_INBOUND,
            [
                {
                    "carrier": mo.carrier,
                    "source_addr": mo.source_addr,
                    "source_addr_ton": mo.source_addr_ton,
                    "source_addr_npi": mo.source_addr_npi,
                    "msisdn": mo.msisdn,
                    "destination_addr": mo.destination_addr,
                    "text": mo.text,
                    "received_at": mo.received_at,
                    "state": (
                        InboundState.RECEIVED if ref is None else InboundState.DUPLICATE
                    ).value,
                    "duplicate_of": ref[1] if ref is not None and not ref[0] else None,
                    "claimed_by": self.owner,
                    "claimed_at": mo.received_at,
                }
                for mo, ref in zip(batch, originals, strict=True)
            ],
        )
        in_batch = [
            {"mo_id": new_id, "p_original": ids[ref[1]]}
            for new_id, ref in zip(ids, originals, strict=True)
            if ref is not None and ref[0]
        ]
        if in_batch:
            conn.execute(_POINT_TO_ORIGINAL, in_batch)

        return [
            InboundMessage(
                id=new_id,
                carrier=mo.carrier,
                source_addr=mo.source_addr,
                source_addr_ton=mo.source_addr_ton,
                source_addr_npi=mo.source_addr_npi,
                msisdn=mo.msisdn,
                destination_addr=mo.destination_addr,
                text=mo.text,
                received_at=mo.received_at,
                state=InboundState.RECEIVED if ref is None else InboundState.DUPLICATE,
            )
            for mo, ref, new_id in zip(batch, originals, ids, strict=True)
        ]

    def claim_inbound(self, *, limit: int) -> list[InboundMessage]:
        """``recover_inbound`` now, taking over any other process's claim."""
        now = datetime.now(UTC)
        return self.recover_inbound(limit=limit, now=now, stale_s=0.0)[0]

    # -- OutboxStore ----------------------------------------------------------

    def claim_outbound(
        self, *, carrier: str, now: datetime, limit: int, lease_s: float
    ) -> list[OutboundMessage]:
        """``lease_outbound``, without the replies it quarantined."""
        return self.lease_outbound(carrier=carrier, now=now, limit=limit, lease_s=lease_s)[0]

    def mark_accepted(
        self, outbound_id: int, *, message_id: str, id_keys: frozenset[str], now: datetime
    ) -> None:
        self.mark_accepted_many([(outbound_id, message_id, id_keys)], now=now)

    def mark_accepted_many(
        self, accepted: Sequence[tuple[int, str, frozenset[str]]], *, now: datetime
    ) -> list[EarlyReceipt]:
        """``mark_accepted`` for several ``(outbound_id, message_id, id_keys)`` in
        ONE transaction; raises StoreError (and writes nothing) if an id is
        unknown. Returns the receipts stored before their reply's acceptance
        that it matched."""
        if not accepted:
            return []
        with self._write() as conn:
            unknown, early = self._mark_accepted(conn, accepted, now=now)
            if unknown:
                raise StoreError(f"no outbound message {unknown[0]}")
        return early

    def _mark_accepted(
        self,
        conn: Statements,
        accepted: Sequence[tuple[int, str, frozenset[str]]],
        *,
        now: datetime,
    ) -> tuple[list[int], list[EarlyReceipt]]:
        """The writes of ``mark_accepted_many``; returns the ids that have no
        reply (nothing is written for them), and the early receipts matched."""
        rows = {
            row.id: row
            for row in conn.execute(_FOR_ACCEPT, {"ids": sorted({a[0] for a in accepted})})
        }
        unknown = [outbound_id for outbound_id, _id, _keys in accepted if outbound_id not in rows]
        matched: list[EarlyReceipt] = []
        if len(unknown) < len(accepted):
            flips: dict[int, dict[str, object]] = {}
            owners: dict[tuple[str, str], int] = {}
            for outbound_id, message_id, id_keys in accepted:
                row = rows.get(outbound_id)
                if row is None:
                    continue
                if row.state == OutboundState.QUEUED.value and outbound_id not in flips:
                    flips[outbound_id] = {
                        "oid": outbound_id,
                        "p_body": mask_body(row.body),
                        "p_message_id": message_id,
                        "p_at": now,
                    }
                for key in sorted(id_keys or {message_id}):
                    owners[(row.carrier, key)] = outbound_id  # the last one wins
            if flips:
                conn.execute(_ACCEPT, list(flips.values()))
            conn.execute(
                self._own_keys,
                [
                    {"carrier": carrier, "key": key, "outbound_id": outbound_id}
                    for (carrier, key), outbound_id in owners.items()
                ],
            )
            # Receipts that came before their submit_sm_resp was recorded.
            early = conn.execute(
                _EARLY_RECEIPTS,
                {
                    "carriers": sorted({carrier for carrier, _key in owners}),
                    "keys": sorted({key for _carrier, key in owners}),
                },
            ).all()
            applied: set[int] = set()
            finals: list[tuple[int, str, datetime]] = []
            for receipt in early:
                owner = owners.get((receipt.carrier, receipt.key))
                if owner is None or receipt.id in applied:
                    continue
                applied.add(receipt.id)
                conn.execute(_MATCH_RECEIPT, {"rid": receipt.id, "oid": owner})
                reply = rows[owner]
                matched.append(
                    EarlyReceipt(
                        receipt_id=receipt.id,
                        carrier=receipt.carrier,
                        stat=receipt.stat,
                        match=ReceiptMatch(
                            outbound_id=owner,
                            mo_id=reply.inbound_id,
                            destination_addr=reply.destination_addr,
                        ),
                    )
                )
                if receipt.final:
                    finals.append((owner, receipt.stat, receipt.received_at))
            self._finish_replies(conn, finals)
        return unknown, matched

    def mark_retry(
        self, outbound_id: int, *, status: int | None, next_attempt_at: datetime
    ) -> None:
        with self._write() as conn:
            conn.execute(
                update(OutboundRow)
                .where(
                    OutboundRow.id == outbound_id,
                    OutboundRow.state == OutboundState.QUEUED.value,
                )
                .values(
                    attempts=OutboundRow.attempts + 1,
                    last_status=status,
                    next_attempt_at=next_attempt_at,
                    lease_until=None,
                    claimed_by=None,
                )
            )

    def mark_failed(self, outbound_id: int, *, status: int, now: datetime) -> None:
        with self._write() as conn:
            row = conn.execute(
                select(OutboundRow.inbound_id, OutboundRow.body).where(
                    OutboundRow.id == outbound_id,
                    OutboundRow.state == OutboundState.QUEUED.value,
                )
            ).first()
            if row is None:
                return
            conn.execute(
                update(OutboundRow)
                .where(OutboundRow.id == outbound_id)
                .values(
                    state=OutboundState.FAILED.value,
                    attempts=OutboundRow.attempts + 1,
                    last_status=status,
                    body=mask_body(row.body),
                    final_at=now,
                    lease_until=None,
                    claimed_by=None,
                )
            )
            self._settle_charge(conn, row.inbound_id, delivered=False, at=now)

    def record_receipt(self, receipt: NewReceipt) -> int | None:
        (matched,) = self.record_receipts([receipt])
        return matched

    def record_receipts(self, receipts: Sequence[NewReceipt]) -> list[int | None]:
        """``record_receipt`` for several receipts in ONE transaction, in order;
        returns the matched outbound id of each (None: kept for mark_accepted)."""
        if not receipts:
            return []
        with self._write() as conn:
            matches = self._record_receipts(conn, receipts)
        return [m.outbound_id if m is not None else None for m in matches]

    def _record_receipts(
        self, conn: Statements, receipts: Sequence[NewReceipt]
    ) -> list[ReceiptMatch | None]:
        if not receipts:
            return []
        keys = [sorted(r.id_keys or {r.message_id}) for r in receipts]
        owners: dict[tuple[str, str], int] = {}
        replies: dict[int, ReceiptMatch] = {}
        for row in conn.execute(
            _OWNERS_OF_KEYS,
            {
                "carriers": sorted({r.carrier for r in receipts}),
                "keys": sorted({k for ks in keys for k in ks}),
            },
        ):
            owners[(row.carrier, row.key)] = row.outbound_id
            replies[row.outbound_id] = ReceiptMatch(
                outbound_id=row.outbound_id,
                mo_id=row.inbound_id,
                destination_addr=row.destination_addr,
            )
        matched: list[int | None] = [
            max(
                (owners[(r.carrier, k)] for k in ks if (r.carrier, k) in owners),
                default=None,
            )
            for r, ks in zip(receipts, keys, strict=True)
        ]
        receipt_ids = self._insert_numbered(
            conn,
            _INSERT_RECEIPT,
            [
                {
                    "carrier": r.carrier,
                    "message_id": r.message_id,
                    "stat": r.stat,
                    "err": r.err,
                    "final": r.final,
                    "received_at": r.received_at,
                    "outbound_id": m,
                }
                for r, m in zip(receipts, matched, strict=True)
            ],
        )
        unmatched_keys = [
            {"receipt_id": receipt_id, "key": k, "carrier": r.carrier}
            for r, ks, m, receipt_id in zip(receipts, keys, matched, receipt_ids, strict=True)
            if m is None
            for k in ks
        ]
        if unmatched_keys:
            conn.execute(_INSERT_RECEIPT_KEY, unmatched_keys)
        self._finish_replies(
            conn,
            [
                (m, r.stat, r.received_at)
                for r, m in zip(receipts, matched, strict=True)
                if m is not None and r.final
            ],
        )
        return [replies[m] if m is not None else None for m in matched]

    @staticmethod
    def _finish_replies(conn: Statements, finals: Sequence[tuple[int, str, datetime]]) -> None:
        """Final receipts ``(outbound id, stat, received at)`` of ACCEPTED
        replies, in order (a reply's first final receipt wins): the reply
        DELIVERED or UNDELIVERABLE, its MT charge final or void."""
        if not finals:
            return
        delivered = [(m, stat.upper() == "DELIVRD", at) for m, stat, at in finals]
        conn.execute(
            _FINISH_ACCEPTED,
            [
                {
                    "oid": m,
                    "p_state": (
                        OutboundState.DELIVERED if ok else OutboundState.UNDELIVERABLE
                    ).value,
                    "p_at": at,
                }
                for m, ok, at in delivered
            ],
        )
        conn.execute(
            _SETTLE_CHARGE_OF_REPLY,
            [
                {"oid": m, "p_charge": "final" if ok else "void", "p_at": at}
                for m, ok, at in delivered
            ],
        )

    @staticmethod
    def _settle_charge(conn: Statements, inbound_id: int, *, delivered: bool, at: datetime) -> None:
        """MT mode: the charge becomes final on delivery, void on a final failure."""
        conn.execute(
            _SETTLE_CHARGE,
            {"iid": inbound_id, "p_state": "final" if delivered else "void", "p_at": at},
        )

    def outbox_depth(self) -> dict[str, int]:
        stmt = (
            select(OutboundRow.carrier, func.count())
            .where(OutboundRow.state == OutboundState.QUEUED.value)
            .group_by(OutboundRow.carrier)
        )
        with self._read() as conn:
            return {carrier: int(n) for carrier, n in conn.execute(stmt)}

    def release_leases(self, ids: Sequence[int] | None = None) -> int:
        """Free the lease of queued replies: of ``ids``, or of every one; returns
        how many were held.

        Every one: only for a daemon that knows it is the store's sole user
        (SQLite, under the daemon lock): the leases are a dead predecessor's,
        and waiting them out would delay its replies by up to a lease. ``ids``:
        replies born leased to the caller that it cannot submit now (so that a
        claimer takes them at once, not a lease later)."""
        stmt = update(OutboundRow).where(
            OutboundRow.state == OutboundState.QUEUED.value,
            OutboundRow.lease_until.is_not(None),
        )
        if ids is not None:
            if not ids:
                return 0
            stmt = stmt.where(OutboundRow.id.in_(sorted(ids)))
        if ids is None:
            return self.release_abandoned()[1]
        with self._write() as conn:
            return int(conn.execute(stmt.values(lease_until=None, claimed_by=None)).rowcount)

    # -- accounts -------------------------------------------------------------

    @contextmanager
    def account_import(self, *, now: datetime) -> Iterator[AccountImport]:
        """One transaction of bulk upserts: committed when the block ends
        normally, rolled back if it raises or calls ``abort()``."""
        try:
            with open_account_import(self._engine, now=now) as importer:
                yield importer
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc
        except self._engine.dialect.loaded_dbapi.Error as exc:
            raise StoreUnavailable(f"database error: {type(exc).__name__}: {exc}") from exc

    def upsert_accounts(
        self,
        rows: Iterable[tuple[str, str, bool]],
        *,
        now: datetime,
        batch_size: int = 10_000,
    ) -> int:
        """Insert or update ``(bhxh_code, phone, e_transaction)`` rows in one
        transaction; phone and e_transaction change, the password never does.
        A code that appears twice: the last one wins. Returns the rows read."""
        count = 0
        with self.account_import(now=now) as importer:
            batch: list[tuple[str, str, bool]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= batch_size:
                    importer.add(batch)
                    count += len(batch)
                    batch = []
            if batch:
                importer.add(batch)
                count += len(batch)
        return count

    # -- maintenance ----------------------------------------------------------

    def prune(self, before: datetime) -> PruneCounts:
        """Delete MOs (decided or duplicate) received before ``before``, with
        their reply, its ids and receipts, and their charge, plus unmatched
        receipts older than ``before``. An MO whose reply is still queued or
        whose charge is still pending stays. Accounts are never touched.
        Works in batches of ``PRUNE_BATCH`` MOs, one transaction each."""
        totals = dict.fromkeys(("inbound", "outbound", "receipts", "charges"), 0)
        has_queued = (
            select(OutboundRow.id)
            .where(
                OutboundRow.inbound_id == InboundRow.id,
                OutboundRow.state == OutboundState.QUEUED.value,
            )
            .exists()
        )
        has_pending = (
            select(ChargeRow.id)
            .where(ChargeRow.inbound_id == InboundRow.id, ChargeRow.state == "pending")
            .exists()
        )
        prunable = (
            select(InboundRow.id)
            .where(
                InboundRow.received_at < before,
                InboundRow.state.in_([InboundState.DECIDED.value, InboundState.DUPLICATE.value]),
                ~has_queued,
                ~has_pending,
            )
            .order_by(InboundRow.id)
            .limit(PRUNE_BATCH)
        )
        while True:
            with self._write() as conn:
                ids = list(conn.execute(prunable).scalars())
                if not ids:
                    break
                out_ids = select(OutboundRow.id).where(OutboundRow.inbound_id.in_(ids))
                receipt_ids = select(ReceiptRow.id).where(ReceiptRow.outbound_id.in_(out_ids))
                conn.execute(delete(ReceiptKeyRow).where(ReceiptKeyRow.receipt_id.in_(receipt_ids)))
                totals["receipts"] += conn.execute(
                    delete(ReceiptRow).where(ReceiptRow.outbound_id.in_(out_ids))
                ).rowcount
                conn.execute(delete(OutboundIdRow).where(OutboundIdRow.outbound_id.in_(out_ids)))
                totals["outbound"] += conn.execute(
                    delete(OutboundRow).where(OutboundRow.inbound_id.in_(ids))
                ).rowcount
                totals["charges"] += conn.execute(
                    delete(ChargeRow).where(ChargeRow.inbound_id.in_(ids))
                ).rowcount
                totals["inbound"] += conn.execute(
                    delete(InboundRow).where(InboundRow.id.in_(ids))
                ).rowcount
        with self._write() as conn:
            stale = select(ReceiptRow.id).where(
                ReceiptRow.outbound_id.is_(None), ReceiptRow.received_at < before
            )
            conn.execute(delete(ReceiptKeyRow).where(ReceiptKeyRow.receipt_id.in_(stale)))
            totals["receipts"] += conn.execute(
                delete(ReceiptRow).where(
                    ReceiptRow.outbound_id.is_(None), ReceiptRow.received_at < before
                )
            ).rowcount
        return PruneCounts(**totals)

    # -- reports --------------------------------------------------------------

    def _local_day(self, column: Any) -> Any:
        # Constants are rendered inline (not bound) so that the GROUP BY
        # expression is textually the one in the select list on PostgreSQL.
        if self._postgres:
            return cast(
                func.timezone(literal_column("'UTC'"), column)
                + literal_column(f"interval '{_LOCAL_OFFSET_HOURS} hours'"),
                Date,
            )
        return func.date(column, literal_column(f"'+{_LOCAL_OFFSET_HOURS} hours'"))

    def charges_report(self, *, start: date | None, end: date | None) -> list[ChargesDay]:
        """Per Vietnam day of the MO and carrier, inclusive dates (None: open)."""
        lo, hi = _local_bounds(start, end)
        day = self._local_day(InboundRow.received_at).label("day")

        def count_if(condition: Any, value: Any = 1) -> Any:
            return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

        stmt = (
            select(
                day,
                InboundRow.carrier,
                func.count(InboundRow.id),
                count_if(ChargeRow.state == "final"),
                count_if(ChargeRow.state == "final", ChargeRow.amount_vnd),
                count_if(ChargeRow.state == "pending"),
                count_if(ChargeRow.state == "void"),
            )
            .select_from(InboundRow)
            .outerjoin(ChargeRow, ChargeRow.inbound_id == InboundRow.id)
            .where(
                InboundRow.state != InboundState.DUPLICATE.value,
                *([InboundRow.received_at >= lo] if lo is not None else []),
                *([InboundRow.received_at < hi] if hi is not None else []),
            )
            .group_by(day, InboundRow.carrier)
            .order_by(day, InboundRow.carrier)
        )
        with self._read() as conn:
            return [
                ChargesDay(
                    day=_as_date(r[0]),
                    carrier=r[1],
                    mo_received=int(r[2]),
                    charged=int(r[3]),
                    amount_vnd=int(r[4]),
                    pending=int(r[5]),
                    void=int(r[6]),
                )
                for r in conn.execute(stmt)
            ]

    def receipts_report(self, *, start: date | None, end: date | None) -> list[ReceiptsDay]:
        """Per Vietnam day the reply was queued and carrier, inclusive dates."""
        lo, hi = _local_bounds(start, end)
        day = self._local_day(OutboundRow.created_at).label("day")

        def count_if(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        stmt = (
            select(
                day,
                OutboundRow.carrier,
                count_if(OutboundRow.accepted_at.is_not(None)),
                count_if(OutboundRow.state == OutboundState.DELIVERED.value),
                count_if(
                    OutboundRow.state.in_(
                        [OutboundState.UNDELIVERABLE.value, OutboundState.FAILED.value]
                    )
                ),
                count_if(OutboundRow.state == OutboundState.ACCEPTED.value),
            )
            .where(
                *([OutboundRow.created_at >= lo] if lo is not None else []),
                *([OutboundRow.created_at < hi] if hi is not None else []),
            )
            .group_by(day, OutboundRow.carrier)
            .order_by(day, OutboundRow.carrier)
        )
        with self._read() as conn:
            return [
                ReceiptsDay(
                    day=_as_date(r[0]),
                    carrier=r[1],
                    accepted=int(r[2]),
                    delivered=int(r[3]),
                    failed=int(r[4]),
                    pending=int(r[5]),
                )
                for r in conn.execute(stmt)
            ]

    # -- the status page ------------------------------------------------------

    def outbox_summary(self) -> tuple[dict[str, int], datetime | None]:
        """Queued replies per carrier, and when the oldest of them was queued."""
        stmt = (
            select(OutboundRow.carrier, func.count(), func.min(OutboundRow.created_at))
            .where(OutboundRow.state == OutboundState.QUEUED.value)
            .group_by(OutboundRow.carrier)
        )
        with self._read() as conn:
            rows = list(conn.execute(stmt))
        depth = {carrier: int(n) for carrier, n, _oldest in rows}
        oldest = min((at for _c, _n, at in rows if at is not None), default=None)
        return depth, oldest

    def daily_activity(self, *, start: date) -> list[ActivityDay]:
        """Resets and charges per Vietnam day of the MO and carrier, from
        ``start`` on (redeliveries left out, as in the charges report)."""
        lo, _hi = _local_bounds(start, None)
        day = self._local_day(InboundRow.received_at).label("day")
        counted = ChargeRow.state.in_(("final", "pending"))
        stmt = (
            select(
                day,
                InboundRow.carrier,
                func.coalesce(
                    func.sum(case((InboundRow.outcome == Outcome.RESET_OK.value, 1), else_=0)), 0
                ),
                func.coalesce(func.sum(case((counted, ChargeRow.amount_vnd), else_=0)), 0),
            )
            .select_from(InboundRow)
            .outerjoin(ChargeRow, ChargeRow.inbound_id == InboundRow.id)
            .where(InboundRow.state != InboundState.DUPLICATE.value, InboundRow.received_at >= lo)
            .group_by(day, InboundRow.carrier)
            .order_by(day, InboundRow.carrier)
        )
        with self._read() as conn:
            return [
                ActivityDay(
                    day=_as_date(r[0]), carrier=r[1], resets=int(r[2]), charges_vnd=int(r[3])
                )
                for r in conn.execute(stmt)
            ]


def _not_current_message(url: str, current: str | None, head: str) -> str:
    return (
        f"database at {masked_url(url)} is not migrated "
        f'(at {current or "empty"}, need {head}): run "smscd db upgrade"'
    )


def open_store(url: str, *, create_if_missing: bool = False) -> SqlStore:
    """Open the store at ``url``, refusing a database that is not at the head
    revision (``SchemaNotCurrent``). With ``create_if_missing`` an empty or
    missing database is created and migrated first (tests, demo); a database
    at another revision is still refused: migrating is the operator's call."""
    head = head_revision()
    if create_if_missing:
        try:
            engine = create_store_engine(url, create_file=False)
        except DatabaseMissing:
            upgrade(url)
        else:
            try:
                empty = current_revision_of(engine) is None
            except SQLAlchemyError as exc:
                raise _unavailable(exc) from exc
            finally:
                engine.dispose()
            if empty:
                upgrade(url)
    try:
        engine = create_store_engine(url, create_file=False)
    except DatabaseMissing:
        raise SchemaNotCurrent(_not_current_message(url, None, head)) from None
    try:
        current = current_revision_of(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _unavailable(exc) from exc
    if current != head:
        engine.dispose()
        raise SchemaNotCurrent(_not_current_message(url, current, head))
    return SqlStore(engine, url=url)
