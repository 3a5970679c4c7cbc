"""``smscd report charges|receipts``: per Vietnam day (UTC+7) and carrier.

Formats
-------
``csv`` (what finance reconciles against a carrier's bill): a header row, then
one row per (date, carrier), ordered by date then carrier, ``\\n`` line ends,
no total row. Columns, exactly:

* charges:  ``date,carrier,channel,mo_received,charged,amount_vnd,pending,void``
  — one row per channel: ``sms`` for the MOs to the short code, by the day the
  MO was received (``mo_received`` excludes redeliveries, duplicates), and
  ``api:<client>`` for an HTTP API client's MTs, by the day they were queued
  (``mo_received`` 0); ``charged``/``amount_vnd`` count final charges;
  ``pending`` MT charges still waiting for a receipt; ``void`` charges
  cancelled by a failed or expired message.
* receipts: ``date,carrier,accepted,delivered,failed,pending``
  — the day the reply was queued; ``accepted`` by the SMSC; ``delivered``
  (DELIVRD receipt); ``failed`` = undeliverable receipts + submits rejected for
  good; ``pending`` = accepted without a final receipt yet.

``date`` is ``YYYY-MM-DD``. ``json`` is a list of objects with the same keys;
``table`` aligns the same columns for a terminal and adds a total row. Date
ranges are inclusive; either end may be open.
"""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Literal

import attrs

from smscd.ops._common import CommandFailed, using_store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import date
    from typing import TextIO

    from smscd.store.sql import ChargesDay, ReceiptsDay, SqlStore

__all__ = ["CHARGES_COLUMNS", "RECEIPTS_COLUMNS", "Format", "charges", "receipts"]

Format = Literal["table", "csv", "json"]

CHARGES_COLUMNS = (
    "date",
    "carrier",
    "channel",
    "mo_received",
    "charged",
    "amount_vnd",
    "pending",
    "void",
)
#: The columns that are not counts.
_TEXT_COLUMNS = ("date", "carrier", "channel")
RECEIPTS_COLUMNS = ("date", "carrier", "accepted", "delivered", "failed", "pending")


def _record(row: ChargesDay | ReceiptsDay) -> dict[str, str | int]:
    values = attrs.asdict(row)
    day: date = values.pop("day")
    return {"date": day.isoformat(), **values}


def _write(
    records: Sequence[dict[str, str | int]],
    columns: Sequence[str],
    fmt: Format,
    out: TextIO,
) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            writer.writerow([record[c] for c in columns])
    elif fmt == "json":
        out.write(json.dumps([{c: r[c] for c in columns} for r in records], indent=2) + "\n")
    else:
        _write_table(records, columns, out)


def _write_table(
    records: Sequence[dict[str, str | int]], columns: Sequence[str], out: TextIO
) -> None:
    numeric = [c for c in columns if c not in _TEXT_COLUMNS]
    totals: dict[str, str | int] = {"date": "total", "carrier": "", "channel": ""}
    for c in numeric:
        totals[c] = sum(int(r[c]) for r in records)

    def cells(record: dict[str, str | int]) -> list[str]:
        return [str(record[c]) if c not in numeric else f"{int(record[c]):,}" for c in columns]

    body = [cells(r) for r in records]
    total = cells(totals)
    widths = [
        max(len(columns[i]), *(len(line[i]) for line in [*body, total]))
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if columns[i] in numeric else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out.write(line(columns) + "\n" + rule + "\n")
    for values in body:
        out.write(line(values) + "\n")
    out.write(rule + "\n" + line(total) + "\n")


def _report(
    database_url: str,
    start: date | None,
    end: date | None,
    fmt: Format,
    out: TextIO,
    err: TextIO,
    columns: Sequence[str],
    query: Callable[[SqlStore], Sequence[ChargesDay | ReceiptsDay]],
) -> int:
    if start is not None and end is not None and start > end:
        print(f"error: --from {start} is after --to {end}", file=err)
        return 2
    try:
        rows = using_store(database_url, query)
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    _write([_record(r) for r in rows], columns, fmt, out)
    return 0


def charges(
    database_url: str,
    *,
    start: date | None,
    end: date | None,
    fmt: Format,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """MOs received and their charges, per day and carrier."""
    return _report(
        database_url,
        start,
        end,
        fmt,
        out,
        err or out,
        CHARGES_COLUMNS,
        lambda store: store.charges_report(start=start, end=end),
    )


def receipts(
    database_url: str,
    *,
    start: date | None,
    end: date | None,
    fmt: Format,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Replies accepted, delivered, failed and pending, per day and carrier."""
    return _report(
        database_url,
        start,
        end,
        fmt,
        out,
        err or out,
        RECEIPTS_COLUMNS,
        lambda store: store.receipts_report(start=start, end=end),
    )
