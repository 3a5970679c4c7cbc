"""The SQL implementation of the store's Protocols (SQLite and PostgreSQL).

Theory of operation
-------------------
Every public method is one short transaction on a pooled connection, written
with SQLAlchemy Core against the models (no ORM session, no identity map: the
rows become the attrs values of ``smscd.store.types`` right here, and only
here). Writing methods begin with ``BEGIN IMMEDIATE`` on SQLite (see
``_engine``); any database error rolls the transaction back and surfaces as
``StoreUnavailable`` (with the statement's parameters hidden: they may carry a
password).

The invariants of DESIGN.md that live here:

* (1) ``store_inbound`` commits the batch before returning; the daemon acks after.
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

import re
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import (
    Date,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from smscd.store._bulk import AccountImport, open_account_import
from smscd.store._engine import (
    DatabaseMissing,
    SchemaNotCurrent,
    create_store_engine,
    masked_url,
)
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
    InboundMessage,
    InboundState,
    NewInbound,
    NewReceipt,
    OutboundMessage,
    OutboundState,
    Outcome,
    ResetCounts,
    StoreError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "VIETNAM_TZ",
    "AccountDetails",
    "AccountImport",
    "ChargesDay",
    "PruneCounts",
    "ReceiptsDay",
    "SchemaNotCurrent",
    "SqlStore",
    "mask_body",
    "open_store",
]

#: Reports count days in Vietnam (UTC+7 all year, no daylight saving).
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
_LOCAL_OFFSET_HOURS = 7

_PASSWORD_AFTER_LABEL = re.compile(r"(Mat khau: *)\S+")
_SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")
#: Prune works through this many MOs per transaction.
PRUNE_BATCH = 5000


def mask_body(body: str) -> str:
    """The reply as it may stay at rest: no password in it.

    The word after ``Mat khau:`` goes, and (should an operator's template put
    the password elsewhere) so does any free-standing run of exactly six digits;
    the 10-digit code, being longer, stays.
    """
    masked = _PASSWORD_AFTER_LABEL.sub(lambda m: m.group(1) + "******", body)
    return _SIX_DIGITS.sub("******", masked)


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


def _inbound_from_row(row: Any) -> InboundMessage:
    return InboundMessage(
        id=row.id,
        carrier=row.carrier,
        source_addr=row.source_addr,
        source_addr_ton=row.source_addr_ton,
        source_addr_npi=row.source_addr_npi,
        msisdn=row.msisdn,
        destination_addr=row.destination_addr,
        text=row.text,
        received_at=row.received_at,
        state=InboundState(row.state),
        outcome=Outcome(row.outcome) if row.outcome is not None else None,
    )


def _outbound_from_row(row: Any) -> OutboundMessage:
    return OutboundMessage(
        id=row.id,
        inbound_id=row.inbound_id,
        carrier=row.carrier,
        destination_addr=row.destination_addr,
        dest_addr_ton=row.dest_addr_ton,
        dest_addr_npi=row.dest_addr_npi,
        body=row.body,
        state=OutboundState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        smsc_message_id=row.smsc_message_id,
        last_status=row.last_status,
    )


_INBOUND_COLUMNS = (
    InboundRow.id,
    InboundRow.carrier,
    InboundRow.source_addr,
    InboundRow.source_addr_ton,
    InboundRow.source_addr_npi,
    InboundRow.msisdn,
    InboundRow.destination_addr,
    InboundRow.text,
    InboundRow.received_at,
    InboundRow.state,
    InboundRow.outcome,
)
_OUTBOUND_COLUMNS = (
    OutboundRow.id,
    OutboundRow.inbound_id,
    OutboundRow.carrier,
    OutboundRow.destination_addr,
    OutboundRow.dest_addr_ton,
    OutboundRow.dest_addr_npi,
    OutboundRow.body,
    OutboundRow.state,
    OutboundRow.attempts,
    OutboundRow.next_attempt_at,
    OutboundRow.smsc_message_id,
    OutboundRow.last_status,
)


# The pipeline's two reads (decision latency): statements built once, with
# bound parameters, so that a call costs a cache lookup instead of a build.
_FIND_ACCOUNT = select(
    AccountRow.phone,
    AccountRow.e_transaction,
    AccountRow.password_hash,
    AccountRow.must_change,
).where(AccountRow.bhxh_code == bindparam("code"))


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


_RESET_COUNTS = select(
    _resets_since(InboundRow.msisdn, "msisdn", "day"),
    _resets_since(InboundRow.msisdn, "msisdn", "month"),
    _resets_since(InboundRow.bhxh_code, "code", "day"),
    _resets_since(InboundRow.bhxh_code, "code", "month"),
)


def _unavailable(exc: SQLAlchemyError) -> StoreUnavailable:
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    return StoreUnavailable(f"database error: {type(detail).__name__}: {detail}")


class SqlStore:
    """``ResetStore``, ``IntakeStore`` and ``OutboxStore`` over one SQLAlchemy engine.

    Thread-safe in the way the daemon uses it: each call checks a connection
    out of the pool for its own transaction. Build it with :func:`open_store`.
    """

    def __init__(self, engine: Engine, *, url: str) -> None:
        self._engine = engine
        self._url = url
        self._postgres = engine.dialect.name == "postgresql"

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
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(smscd_write=True)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """For reads of ONE statement (on SQLite they run without a transaction)."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(smscd_read=True)
                yield conn
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc

    def _upsert(self, table: Any) -> Any:
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

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
        reset = decision.outcome is Outcome.RESET_OK
        if reset and (decision.password_hash is None or decision.bhxh_code is None):
            raise ValueError("a RESET_OK decision needs a code and a password hash")
        if not reset and decision.password_hash is not None:
            raise ValueError("only a RESET_OK decision carries a password hash")
        at = decision.decided_at
        with self._write() as conn:
            mo = conn.execute(
                update(InboundRow)
                .where(
                    InboundRow.id == decision.inbound_id,
                    InboundRow.state == InboundState.RECEIVED.value,
                )
                .values(
                    state=InboundState.DECIDED.value,
                    outcome=decision.outcome.value,
                    bhxh_code=decision.bhxh_code,
                    decided_at=at,
                )
                .returning(
                    InboundRow.carrier,
                    InboundRow.source_addr,
                    InboundRow.source_addr_ton,
                    InboundRow.source_addr_npi,
                )
            ).first()
            if mo is None:
                exists = conn.execute(
                    select(InboundRow.state).where(InboundRow.id == decision.inbound_id)
                ).first()
                if exists is None:
                    raise StoreError(f"no inbound message {decision.inbound_id}")
                raise AlreadyDecided(
                    f"inbound message {decision.inbound_id} is {exists.state}, not received"
                )
            if reset:
                changed = conn.execute(
                    update(AccountRow)
                    .where(AccountRow.bhxh_code == decision.bhxh_code)
                    .values(
                        password_hash=decision.password_hash,
                        must_change=True,
                        password_changed_at=at,
                        updated_at=at,
                    )
                ).rowcount
                if changed != 1:
                    raise StoreError(f"no account {decision.bhxh_code} to reset")
            outbound_id: int = conn.execute(
                insert(OutboundRow)
                .values(
                    inbound_id=decision.inbound_id,
                    carrier=mo.carrier,
                    destination_addr=mo.source_addr,
                    dest_addr_ton=mo.source_addr_ton,
                    dest_addr_npi=mo.source_addr_npi,
                    body=decision.reply_text,
                    state=OutboundState.QUEUED.value,
                    attempts=0,
                    next_attempt_at=at,
                    created_at=at,
                )
                .returning(OutboundRow.id)
            ).scalar_one()
            final = decision.charging is ChargingMode.MO
            conn.execute(
                insert(ChargeRow).values(
                    inbound_id=decision.inbound_id,
                    carrier=mo.carrier,
                    amount_vnd=decision.charge_vnd,
                    mode=decision.charging.value,
                    state="final" if final else "pending",
                    created_at=at,
                    finalized_at=at if final else None,
                )
            )
        return outbound_id

    # -- IntakeStore ----------------------------------------------------------

    def store_inbound(
        self, batch: Sequence[NewInbound], *, duplicate_window_s: float
    ) -> list[InboundMessage]:
        stored: list[InboundMessage] = []
        if not batch:
            return stored
        window = timedelta(seconds=duplicate_window_s)
        with self._write() as conn:
            for mo in batch:
                original: int | None = None
                if duplicate_window_s > 0:
                    earlier = conn.execute(
                        select(InboundRow.id, InboundRow.duplicate_of)
                        .where(
                            InboundRow.carrier == mo.carrier,
                            InboundRow.msisdn == mo.msisdn,
                            InboundRow.received_at >= mo.received_at - window,
                            InboundRow.received_at <= mo.received_at,
                            InboundRow.text == mo.text,
                        )
                        .order_by(InboundRow.id.desc())
                        .limit(1)
                    ).first()
                    if earlier is not None:
                        original = earlier.duplicate_of or earlier.id
                state = InboundState.RECEIVED if original is None else InboundState.DUPLICATE
                new_id: int = conn.execute(
                    insert(InboundRow)
                    .values(
                        carrier=mo.carrier,
                        source_addr=mo.source_addr,
                        source_addr_ton=mo.source_addr_ton,
                        source_addr_npi=mo.source_addr_npi,
                        msisdn=mo.msisdn,
                        destination_addr=mo.destination_addr,
                        text=mo.text,
                        received_at=mo.received_at,
                        state=state.value,
                        duplicate_of=original,
                    )
                    .returning(InboundRow.id)
                ).scalar_one()
                stored.append(
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
                        state=state,
                    )
                )
        return stored

    def claim_inbound(self, *, limit: int) -> list[InboundMessage]:
        stmt = (
            select(*_INBOUND_COLUMNS)
            .where(InboundRow.state == InboundState.RECEIVED.value)
            .order_by(InboundRow.id)
            .limit(limit)
        )
        if self._postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        with self._write() as conn:
            return [_inbound_from_row(row) for row in conn.execute(stmt)]

    # -- OutboxStore ----------------------------------------------------------

    def claim_outbound(
        self, *, carrier: str, now: datetime, limit: int, lease_s: float
    ) -> list[OutboundMessage]:
        free = or_(OutboundRow.lease_until.is_(None), OutboundRow.lease_until <= now)
        due = (
            select(OutboundRow.id)
            .where(
                OutboundRow.carrier == carrier,
                OutboundRow.state == OutboundState.QUEUED.value,
                OutboundRow.next_attempt_at <= now,
                free,
            )
            .order_by(OutboundRow.id)
            .limit(limit)
        )
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        with self._write() as conn:
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(OutboundRow)
                .where(OutboundRow.id.in_(ids), free)
                .values(lease_until=now + timedelta(seconds=lease_s))
                .returning(*_OUTBOUND_COLUMNS)
            ).all()
        return sorted((_outbound_from_row(row) for row in rows), key=lambda m: m.id)

    def mark_accepted(
        self, outbound_id: int, *, message_id: str, id_keys: frozenset[str], now: datetime
    ) -> None:
        keys = sorted(id_keys or {message_id})
        with self._write() as conn:
            row = conn.execute(
                select(OutboundRow.carrier, OutboundRow.state, OutboundRow.body).where(
                    OutboundRow.id == outbound_id
                )
            ).first()
            if row is None:
                raise StoreError(f"no outbound message {outbound_id}")
            if row.state == OutboundState.QUEUED.value:
                conn.execute(
                    update(OutboundRow)
                    .where(OutboundRow.id == outbound_id)
                    .values(
                        state=OutboundState.ACCEPTED.value,
                        attempts=OutboundRow.attempts + 1,
                        body=mask_body(row.body),
                        smsc_message_id=message_id,
                        accepted_at=now,
                        lease_until=None,
                    )
                )
            ins = self._upsert(OutboundIdRow.__table__)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["carrier", "key"],
                    set_={"outbound_id": ins.excluded.outbound_id},
                ),
                [{"carrier": row.carrier, "key": k, "outbound_id": outbound_id} for k in keys],
            )
            early = conn.execute(
                select(ReceiptRow.id, ReceiptRow.stat, ReceiptRow.final, ReceiptRow.received_at)
                .where(
                    ReceiptRow.outbound_id.is_(None),
                    ReceiptRow.id.in_(
                        select(ReceiptKeyRow.receipt_id).where(
                            ReceiptKeyRow.carrier == row.carrier, ReceiptKeyRow.key.in_(keys)
                        )
                    ),
                )
                .order_by(ReceiptRow.id)
            ).all()
            for receipt in early:
                conn.execute(
                    update(ReceiptRow)
                    .where(ReceiptRow.id == receipt.id)
                    .values(outbound_id=outbound_id)
                )
                self._apply_receipt(
                    conn,
                    outbound_id,
                    stat=receipt.stat,
                    final=bool(receipt.final),
                    at=receipt.received_at,
                )

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
                )
            )
            self._settle_charge(conn, row.inbound_id, delivered=False, at=now)

    def record_receipt(self, receipt: NewReceipt) -> int | None:
        keys = sorted(receipt.id_keys or {receipt.message_id})
        with self._write() as conn:
            matched: int | None = conn.execute(
                select(func.max(OutboundIdRow.outbound_id)).where(
                    OutboundIdRow.carrier == receipt.carrier, OutboundIdRow.key.in_(keys)
                )
            ).scalar_one()
            receipt_id: int = conn.execute(
                insert(ReceiptRow)
                .values(
                    carrier=receipt.carrier,
                    message_id=receipt.message_id,
                    stat=receipt.stat,
                    err=receipt.err,
                    final=receipt.final,
                    received_at=receipt.received_at,
                    outbound_id=matched,
                )
                .returning(ReceiptRow.id)
            ).scalar_one()
            if matched is None:
                conn.execute(
                    insert(ReceiptKeyRow),
                    [
                        {"receipt_id": receipt_id, "key": k, "carrier": receipt.carrier}
                        for k in keys
                    ],
                )
                return None
            self._apply_receipt(
                conn, matched, stat=receipt.stat, final=receipt.final, at=receipt.received_at
            )
        return matched

    def _apply_receipt(
        self, conn: Connection, outbound_id: int, *, stat: str, final: bool, at: datetime
    ) -> None:
        """A final receipt ends an ACCEPTED reply (and settles an MT charge)."""
        if not final:
            return
        delivered = stat.upper() == "DELIVRD"
        inbound_id = conn.execute(
            update(OutboundRow)
            .where(
                OutboundRow.id == outbound_id,
                OutboundRow.state == OutboundState.ACCEPTED.value,
            )
            .values(
                state=(OutboundState.DELIVERED if delivered else OutboundState.UNDELIVERABLE).value,
                final_at=at,
            )
            .returning(OutboundRow.inbound_id)
        ).scalar_one_or_none()
        if inbound_id is not None:
            self._settle_charge(conn, inbound_id, delivered=delivered, at=at)

    @staticmethod
    def _settle_charge(conn: Connection, inbound_id: int, *, delivered: bool, at: datetime) -> None:
        """MT mode: the charge becomes final on delivery, void on a final failure."""
        conn.execute(
            update(ChargeRow)
            .where(
                ChargeRow.inbound_id == inbound_id,
                ChargeRow.mode == ChargingMode.MT.value,
                ChargeRow.state == "pending",
            )
            .values(state="final" if delivered else "void", finalized_at=at)
        )

    def outbox_depth(self) -> dict[str, int]:
        stmt = (
            select(OutboundRow.carrier, func.count())
            .where(OutboundRow.state == OutboundState.QUEUED.value)
            .group_by(OutboundRow.carrier)
        )
        with self._read() as conn:
            return {carrier: int(n) for carrier, n in conn.execute(stmt)}

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
