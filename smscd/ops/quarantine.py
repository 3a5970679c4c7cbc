"""``smscd quarantine list|retry|drop``: what the daemon set aside, and acting on it.

An MO or a reply is quarantined when its processing failed on its own data, or
when two daemons in a row stopped while holding it (see
``smscd.store._containment``). ``list`` shows them (phones masked);
``retry KIND ID`` puts one back in the stream (a running daemon takes it up
within seconds: an MO at its next recovery pass, a reply at its next claim);
``drop KIND ID`` gives it up for good (an MO is never answered; a reply is
FAILED, its body masked, an MT-mode charge voided). KIND is ``mo`` or
``reply``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from smscd.ops._common import CommandFailed, using_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from smscd.store import QuarantinedItem

__all__ = ["KINDS", "drop", "list_items", "retry"]

KINDS = ("mo", "reply")


def _row(item: QuarantinedItem, mask: Callable[[str], str]) -> dict[str, object]:
    return {
        "kind": item.kind,
        "id": item.id,
        "carrier": item.carrier,
        "phone": mask(item.address),
        "stage": item.stage,
        "reason": item.reason,
        "at": item.at.isoformat(timespec="seconds") if item.at is not None else None,
        "claims": item.claims,
    }


def list_items(
    database_url: str, *, fmt: str, mask: Callable[[str], str], out: TextIO, err: TextIO
) -> int:
    """Print the quarantined MOs and replies, oldest first; exit 0 (1 when there
    are some, so a monitoring check can call it)."""
    try:
        items = using_store(database_url, lambda store: store.quarantined())
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    rows = [_row(item, mask) for item in items]
    if fmt == "json":
        out.write(json.dumps(rows, indent=2) + "\n")
        return 1 if rows else 0
    if not rows:
        print("nothing in quarantine", file=out)
        return 0
    columns = ("kind", "id", "carrier", "phone", "stage", "at", "claims", "reason")
    cells = [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    for line in cells:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip(), file=out)
    return 1


def _act(
    database_url: str,
    kind: str,
    item_id: int,
    *,
    verb: str,
    out: TextIO,
    err: TextIO,
) -> int:
    now = datetime.now(UTC)
    try:
        done = using_store(
            database_url,
            lambda store: (
                store.retry_quarantined(kind, item_id, now=now)
                if verb == "retry"
                else store.drop_quarantined(kind, item_id, now=now)
            ),
        )
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    if not done:
        print(f"error: no {kind} {item_id} in quarantine", file=err)
        return 1
    print(f"{kind} {item_id}: {'put back' if verb == 'retry' else 'dropped'}", file=out)
    return 0


def retry(database_url: str, kind: str, item_id: int, *, out: TextIO, err: TextIO) -> int:
    """Put one quarantined item back in the stream."""
    return _act(database_url, kind, item_id, verb="retry", out=out, err=err)


def drop(database_url: str, kind: str, item_id: int, *, out: TextIO, err: TextIO) -> int:
    """Give one quarantined item up for good."""
    return _act(database_url, kind, item_id, verb="drop", out=out, err=err)
