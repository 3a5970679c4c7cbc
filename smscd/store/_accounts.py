"""Accounts: the pipeline's two reads, ``smscd accounts show`` and the import."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError

from smscd.reset import Account, Outcome, ResetCounts
from smscd.store._base import StoreBase, unavailable
from smscd.store._bulk import AccountImport, open_account_import
from smscd.store._cursor import prepared
from smscd.store.models import AccountRow, InboundRow, UtcDateTime
from smscd.store.types import StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

__all__ = ["AccountDetails", "Accounts"]


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


class Accounts(StoreBase):
    """``find_account`` and ``reset_counts`` of ``smscd.reset.ResetStore``, the
    decision batch's ``find_accounts``, and the account table's maintenance; a
    part of ``SqlStore``."""

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

    @contextmanager
    def account_import(self, *, now: datetime) -> Iterator[AccountImport]:
        """One transaction of bulk upserts: committed when the block ends
        normally, rolled back if it raises or calls ``abort()``."""
        try:
            with open_account_import(self._engine, now=now) as importer:
                yield importer
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
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
