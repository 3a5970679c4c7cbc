"""Store benchmark: bulk account import, then decision latency on that database.

    python -m tests.bench.bench_store [--accounts N] [--lookups N]

1. Writes a deterministic CSV of N accounts (default 21,600,000, or
   ``$SMSCD_BENCH_ACCOUNTS``) into a temporary directory, streaming: 10-digit
   codes in pseudo-random order (a bijection of the row number, so unique
   without remembering them), phones in mixed written forms (``0…``, ``84…``,
   ``+84 …`` and pre-2018 11-digit numbers), e_transaction in mixed spellings.
2. Imports it into a fresh SQLite database with ``smscd.ops.accounts.import_csv``
   in a child process (multiprocessing, spawn) whose own peak RSS
   (``resource.getrusage``) is reported, with rows/s.
3. Times ``smscd.reset.Pipeline.decide()`` (no commit, a hasher that costs
   nothing) over random codes: a mix of matching, mismatching and unknown
   ones; prints p50/p99 in ms.

Goals: 21.6 M rows in under 5 minutes with peak RSS under 300 MB; decision
p99 under 1 ms. Temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

__all__ = ["main"]

DEFAULT_ACCOUNTS = 21_600_000
CODE_SPACE = 10**10
#: code(i) = (A * i + B) mod 10**10 is a bijection (A is coprime with 10).
_A = 7_919_000_003
_B = 1_234_567_891
_NEW_PREFIXES = ("32", "33", "34", "35", "36", "37", "38", "39", "70", "77", "79", "81", "83")
#: pre-2018 11-digit prefix -> today's 2-digit prefix (after the leading 0).
_OLD = {"162": "32", "163": "33", "168": "38", "120": "70", "123": "83", "186": "56"}
_OLD_KEYS = tuple(_OLD)
_ETX_TRUE = ("1", "1", "1", "1", "true", "yes", "Y")
_ETX_FALSE = ("0", "false", "no")


def code_of(i: int) -> str:
    return f"{(_A * i + _B) % CODE_SPACE:010d}"


def account_row(i: int) -> tuple[str, str, str, bool]:
    """Row ``i``: (code, phone as written, canonical phone, e_transaction)."""
    h = (i * 2_654_435_761) & 0xFFFFFFFF
    rest = f"{h % 10_000_000:07d}"
    form = h % 20
    if form < 2:  # pre-2018 11-digit number
        old = _OLD_KEYS[(h >> 8) % len(_OLD_KEYS)]
        written, canonical = f"0{old}{rest}", f"84{_OLD[old]}{rest}"
    else:
        prefix = _NEW_PREFIXES[(h >> 8) % len(_NEW_PREFIXES)]
        canonical = f"84{prefix}{rest}"
        if form < 13:
            written = f"0{prefix}{rest}"
        elif form < 19:
            written = canonical
        else:
            written = f"+84 {prefix} {rest[:3]} {rest[3:]}"
    etx = (h >> 16) % 10 != 0
    return code_of(i), written, canonical, etx


def write_csv(path: Path, accounts: int) -> None:
    with open(path, "w", encoding="ascii", newline="") as f:
        f.write("bhxh_code,phone,e_transaction\n")
        chunk: list[str] = []
        for i in range(accounts):
            code, written, _canonical, etx = account_row(i)
            spelled = _ETX_TRUE[i % len(_ETX_TRUE)] if etx else _ETX_FALSE[i % len(_ETX_FALSE)]
            chunk.append(f"{code},{written},{spelled}\n")
            if len(chunk) >= 100_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))


def _import_child(url: str, path: str, results: Queue[tuple[int, float, int, str]]) -> None:
    from smscd.ops.accounts import import_csv
    from smscd.reset import canonical_msisdn

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    rc = import_csv(
        url,
        Path(path),
        normalize_phone=canonical_msisdn,
        progress=False,
        out=out,
        err=err,
    )
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put((rc, elapsed, peak_kib, (out.getvalue() + err.getvalue()).strip()))


def run_import(url: str, csv_path: Path) -> tuple[int, float, int, str]:
    ctx = multiprocessing.get_context("spawn")
    results: Queue[tuple[int, float, int, str]] = ctx.Queue()
    child = ctx.Process(target=_import_child, args=(url, str(csv_path), results))
    child.start()
    outcome = results.get()
    child.join()
    return outcome


class _FreeHasher:
    """Costs nothing: the benchmark measures the store, not argon2."""

    def hash(self, password: str) -> str:
        return "$bench$" + str(len(password))


def decision_latency(url: str, accounts: int, lookups: int) -> None:
    try:
        from smscd.reset import Pipeline, ResetPolicy, Templates
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        print(f"decision latency skipped: smscd.reset.Pipeline is not available ({exc})")
        return
    from smscd.reset import ChargingMode, InboundMessage, InboundState
    from smscd.store.sql import open_store

    now = datetime.now(UTC)
    store = open_store(url)
    pipeline = Pipeline(
        policy=ResetPolicy(), templates=Templates(), hasher=_FreeHasher(), clock=lambda: now
    )
    rng = random.Random(8079)
    timings: list[float] = []
    outcomes: Counter[str] = Counter()
    try:
        for n in range(lookups + 500):
            kind = n % 3
            i = rng.randrange(accounts)
            code, _written, phone, _etx = account_row(i)
            if kind == 1:  # right code, wrong phone
                phone = account_row((i + 1) % accounts)[2]
            elif kind == 2:  # a code nobody has
                code = code_of(accounts + rng.randrange(1_000_000))
            mo = InboundMessage(
                id=n + 1,
                carrier="viettel",
                source_addr="0" + phone[2:],
                source_addr_ton=0,
                source_addr_npi=1,
                msisdn=phone,
                destination_addr="8079",
                text=f"BH MK {code}",
                received_at=now,
                state=InboundState.RECEIVED,
            )
            started = time.perf_counter()
            decision = pipeline.decide(mo, store, charging=ChargingMode.MO, charge_vnd=1000)
            elapsed = time.perf_counter() - started
            if n >= 500:  # warm-up excluded
                timings.append(elapsed)
                outcomes[decision.outcome.value] += 1
    finally:
        store.close()
    q = statistics.quantiles(timings, n=100, method="inclusive")
    print(
        f"decide(): {len(timings)} decisions, p50 {q[49] * 1e3:.3f} ms, "
        f"p99 {q[98] * 1e3:.3f} ms (goal < 1 ms); outcomes {dict(sorted(outcomes.items()))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_store")
    parser.add_argument(
        "--accounts",
        type=int,
        default=int(os.environ.get("SMSCD_BENCH_ACCOUNTS", DEFAULT_ACCOUNTS)),
    )
    parser.add_argument("--lookups", type=int, default=20_000)
    args, _unknown = parser.parse_known_args(sys.argv[1:])
    from smscd.store.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="smscd-bench-") as tmp:
        csv_path = Path(tmp) / "accounts.csv"
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        write_csv(csv_path, args.accounts)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"generated {args.accounts:,} accounts ({size_mb:,.0f} MB CSV) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        upgrade(url)
        rc, elapsed, peak_kib, message = run_import(url, csv_path)
        if rc != 0:
            print(f"import failed (exit {rc}): {message}")
            return
        db_mb = Path(url.removeprefix("sqlite:///")).stat().st_size / 1e6
        print(
            f"import: {args.accounts:,} rows in {elapsed:.1f} s = "
            f"{args.accounts / elapsed:,.0f} rows/s (goal < 300 s for 21.6 M); "
            f"peak RSS {peak_kib / 1024:.0f} MB (goal < 300 MB); database {db_mb:,.0f} MB"
        )
        csv_path.unlink()
        decision_latency(url, args.accounts, args.lookups)


if __name__ == "__main__":
    main()
