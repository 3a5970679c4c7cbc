"""`make bench`: run every benchmark and print its figures.

Each benchmark module has a ``main()`` and is bounded in time. Set
``SMSCD_BENCH_ACCOUNTS`` to import fewer than the full 21.6 million accounts.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = (
    "tests.bench.bench_codec",
    "tests.bench.bench_link",
    "tests.bench.bench_hash",
    "tests.bench.bench_store",
    "tests.bench.bench_e2e",
    "tests.bench.bench_status",
    "tests.bench.bench_latency",
    "tests.bench.bench_api",
)


def main() -> int:
    only = sys.argv[1:]
    for name in BENCHMARKS:
        if only and not any(o in name for o in only):
            continue
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        module.main()
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
