"""``smscd accounts import FILE.csv`` and ``smscd accounts show CODE``.

Theory of operation (import)
----------------------------
The file is read once, as a stream (``csv.reader`` over the open file, one
batch of ``batch_size`` rows in memory at a time), inside ONE database
transaction (``SqlStore.account_import``):

* every row is validated; good rows go to the database batch by batch;
* at the first bad row (without ``skip_bad``) nothing more is written, the
  rest of the file is still validated so that every bad line is reported, and
  the transaction is rolled back at the end: nothing is imported.

We chose this over "validate in a first pass, import in a second": a good file
(the normal case) is read and parsed once instead of twice, memory is flat
either way (the database, not Python, holds the uncommitted rows), and a bad
file costs at most the rows written before its first bad line. A code that
appears twice in the file: the LAST occurrence wins. The upsert changes phone
and e_transaction, never a password.

A file that is not UTF-8 is unusable, even with ``skip_bad``: it is most
likely an export in another encoding, whose rows cannot be trusted. Lines are
numbered from 1, the header being line 1, for bad rows and bad bytes alike. The
text is decoded by the file object in large chunks, so the line of a bad byte
is found only once decoding has failed, by reading the file again as bytes
(:func:`_undecodable_line`): a good file pays nothing for it.

Exit codes: 0 imported; 1 bad rows (nothing imported, unless ``skip_bad``);
2 unusable file, header or database.
"""

from __future__ import annotations

import codecs
import csv
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tqdm import tqdm

from smscd.ops._common import CommandFailed, using_store
from smscd.store.sql import open_store
from smscd.store.types import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import TextIO

__all__ = ["HEADER", "MAX_LISTED_BAD_ROWS", "import_csv", "show"]

HEADER = ["bhxh_code", "phone", "e_transaction"]
#: Bad lines listed one by one; beyond this only their count is reported.
MAX_LISTED_BAD_ROWS = 1000

_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "y": True,
    "0": False,
    "false": False,
    "no": False,
    "n": False,
}


def _want_progress(progress: bool | None, stream: TextIO) -> bool:
    if progress is not None:
        return progress
    if os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def import_csv(
    database_url: str,
    path: Path,
    *,
    normalize_phone: Callable[[str], str | None],
    skip_bad: bool = False,
    progress: bool | None = None,
    batch_size: int = 10_000,
    out: TextIO,
    err: TextIO,
) -> int:
    """Upsert the accounts of a ``bhxh_code,phone,e_transaction`` CSV file."""
    started = time.monotonic()
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=err)
        return 2
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            print(f"error: {path}: {_undecodable_line(path)}; nothing imported", file=err)
            return 2
        except csv.Error as exc:
            print(f"error: {path} is not a readable CSV file: {exc}", file=err)
            return 2
        if header != HEADER:
            print(
                f"error: {path}: the header must be exactly {','.join(HEADER)!r}, "
                f"found {','.join(header) if header else 'nothing'!r}",
                file=err,
            )
            return 2
        try:
            store = open_store(database_url)
        except StoreError as exc:
            print(f"error: {exc}", file=err)
            return 2
        bar = tqdm(
            unit=" rows",
            unit_scale=True,
            file=err,
            disable=not _want_progress(progress, err),
            mininterval=0.5,
            desc="importing",
        )
        good = bad = 0
        unusable: str | None = None
        try:
            with store.account_import(now=datetime.now(UTC)) as importer:
                batch: list[tuple[str, str, bool]] = []
                append = batch.append
                booleans = _BOOLEANS
                reason: str | None
                try:
                    for row in reader:
                        reason = None
                        if len(row) != 3:
                            if not row:
                                continue  # a blank line
                            reason = f"expected 3 fields, found {len(row)}"
                        else:
                            code, phone, etx = row
                            code = code.strip()
                            canonical = normalize_phone(phone.strip())
                            flag = booleans.get(etx.strip().lower())
                            if len(code) != 10 or not code.isdigit() or not code.isascii():
                                reason = "bhxh_code must be exactly 10 digits"
                            elif canonical is None:
                                reason = "phone is not a valid Vietnamese mobile number"
                            elif flag is None:
                                reason = "e_transaction must be one of 1/0/true/false/yes/no/y/n"
                            else:
                                append((code, canonical, flag))
                                good += 1
                                if len(batch) >= batch_size:
                                    if skip_bad or not bad:
                                        importer.add(batch)
                                    bar.update(len(batch))
                                    batch.clear()
                                continue
                        bad += 1
                        if bad <= MAX_LISTED_BAD_ROWS:
                            print(f"line {reader.line_num}: {reason}", file=err)
                except UnicodeDecodeError:
                    unusable = _undecodable_line(path)
                except csv.Error as exc:
                    unusable = f"line {reader.line_num}: unreadable: {exc}"
                if batch and (skip_bad or not bad) and unusable is None:
                    importer.add(batch)
                bar.update(len(batch))
                if unusable is not None or (bad and not skip_bad):
                    importer.abort()
        except StoreError as exc:
            print(f"error: {exc}", file=err)
            return 2
        finally:
            bar.close()
            store.close()
    elapsed = time.monotonic() - started
    if bad > MAX_LISTED_BAD_ROWS:
        print(f"... and {bad - MAX_LISTED_BAD_ROWS} more bad lines", file=err)
    if unusable is not None:
        print(f"error: {path}: {unusable}; nothing imported", file=err)
        return 2
    if bad and not skip_bad:
        print(
            f"error: {bad} bad rows; nothing imported (fix them, or use --skip-bad)",
            file=err,
        )
        return 1
    rate = good / elapsed if elapsed > 0 else 0.0
    print(
        f"imported {good} accounts ({bad} bad rows skipped) in {elapsed:.1f} s ({rate:.0f} rows/s)",
        file=out,
    )
    return 0


_SCAN_CHUNK = 1 << 20


def _line_breaks(data: bytes) -> int:
    """Line ends in ``data`` as the CSV reader counts them: ``\\r\\n``, ``\\n``
    or ``\\r`` (the file is opened with ``newline=""``)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _undecodable_line(path: Path) -> str:
    """Where the first byte that is not UTF-8 sits in ``path``: ``line 502: not
    UTF-8 text (byte 0xff at column 12)``, the column counted in bytes. The byte
    is named in hex, never echoed. Read in chunks: memory stays flat, whatever
    the file's size."""
    decode = codecs.utf_8_decode
    lines = 1
    line_start = 0  # file offset of the current line's first byte
    base = 0  # file offset of data[0]
    pending = b""
    try:
        with open(path, "rb") as handle:
            while True:
                chunk = handle.read(_SCAN_CHUNK)
                data = pending + chunk
                bad: int | None = None
                try:
                    # final=False leaves a sequence cut by the chunk's end for the next.
                    _, consumed = decode(data, "strict", not chunk)
                except UnicodeDecodeError as exc:
                    consumed, bad = exc.start, data[exc.start]
                else:
                    if not chunk:
                        return "not UTF-8 text"  # the file changed since it was read
                    if data[consumed - 1 : consumed] == b"\r":
                        consumed -= 1  # the \n of a \r\n may open the next chunk
                done = data[:consumed]
                lines += _line_breaks(done)
                last_end = max(done.rfind(b"\n"), done.rfind(b"\r"))
                if last_end >= 0:
                    line_start = base + last_end + 1
                if bad is not None:
                    column = base + consumed - line_start + 1
                    return f"line {lines}: not UTF-8 text (byte 0x{bad:02x} at column {column})"
                base += consumed
                pending = data[consumed:]
    except OSError as exc:
        return f"not UTF-8 text (and cannot be read again: {exc.strerror or exc})"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def show(
    database_url: str,
    code: str,
    out: TextIO,
    *,
    mask: Callable[[str], str],
    err: TextIO | None = None,
) -> int:
    """Print one account: the phone masked, never the password hash."""
    try:
        details = using_store(database_url, lambda store: store.account_details(code))
    except CommandFailed as exc:
        print(exc, file=err or out)
        return exc.exit_code
    if details is None:
        print(f"no account with code {code}", file=err or out)
        return 1
    if details.password_set:
        changed = details.password_changed_at
        hash_state = "yes" + (f" (set {changed.isoformat(timespec='seconds')})" if changed else "")
    else:
        hash_state = "no"
    lines = [
        ("bhxh_code", details.bhxh_code),
        ("phone", mask(details.phone)),
        ("e_transaction", _yes_no(details.e_transaction)),
        ("must_change", _yes_no(details.must_change)),
        ("password_set", hash_state),
        ("updated_at", details.updated_at.isoformat(timespec="seconds")),
    ]
    for label, value in lines:
        print(f"{label + ':':<15}{value}", file=out)
    return 0
