"""``smscd db upgrade`` and ``smscd db prune``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from smscd.ops._common import CommandFailed, using_store
from smscd.store._engine import masked_url
from smscd.store.migrate import current_revision
from smscd.store.migrate import upgrade as migrate_upgrade
from smscd.store.types import StoreError

if TYPE_CHECKING:
    from datetime import datetime
    from typing import TextIO

__all__ = ["MIN_RETENTION_DAYS", "prune", "upgrade"]

#: Rate limits look back one calendar month (at most 31 days); keep a margin.
MIN_RETENTION_DAYS = 35


def upgrade(database_url: str, out: TextIO, err: TextIO | None = None) -> int:
    """Create or migrate the schema; prints where it was and where it is now."""
    err = err or out
    shown = masked_url(database_url)
    try:
        before = current_revision(database_url)
        head = migrate_upgrade(database_url)
    except StoreError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except Exception as exc:
        print(f"error: cannot migrate database at {shown}: {type(exc).__name__}: {exc}", file=err)
        return 2
    if before == head:
        print(f"database at {shown} is up to date (revision {head})", file=out)
    else:
        print(f"database at {shown} migrated from {before or 'empty'} to {head}", file=out)
    return 0


def prune(
    database_url: str,
    *,
    retention_days: int,
    now: datetime,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Delete finished messages older than ``retention_days`` (at least 35)."""
    err = err or out
    if retention_days < MIN_RETENTION_DAYS:
        print(
            f"error: retention of {retention_days} days refused: rate limits look back a "
            f"month, keep at least {MIN_RETENTION_DAYS} days",
            file=err,
        )
        return 2
    before = now - timedelta(days=retention_days)
    try:
        counts = using_store(database_url, lambda store: store.prune(before))
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    print(
        f"pruned messages received before {before.isoformat(timespec='seconds')}: "
        f"{counts.inbound} inbound, {counts.outbound} outbound, "
        f"{counts.receipts} receipts, {counts.charges} charges",
        file=out,
    )
    return 0
