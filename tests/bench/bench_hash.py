"""How many resets per second argon2id at the default cost allows.

Run: ``python -m tests.bench.bench_hash``. Prints the median time of one hash at
the default parameters (OWASP's argon2id minimum: 19 MiB, t=2, p=1) and the
ceiling it implies, ``cores / hash time`` resets per second, since every
successful reset hashes once and hashing is CPU- and memory-bound in a worker
thread (argon2-cffi releases the GIL).
"""

from __future__ import annotations

import os
import statistics
import time

from smscd.reset import HashParams, PasswordHasher, new_password

__all__ = ["ROUNDS", "main", "measure"]

#: Hashes timed (after one warm-up).
ROUNDS = 15


def measure(params: HashParams, rounds: int = ROUNDS) -> float:
    """Median seconds per hash over ``rounds`` hashes."""
    hasher = PasswordHasher(params)
    hasher.hash(new_password())  # warm-up: first allocation, library load
    timings = []
    for _ in range(rounds):
        password = new_password()
        start = time.perf_counter()
        hasher.hash(password)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    params = HashParams()
    median = measure(params)
    cores = os.cpu_count() or 1
    print(
        f"argon2id m={params.memory_kib} KiB, t={params.time_cost}, p={params.parallelism}:"
        f" median {median * 1000:.1f} ms per hash over {ROUNDS} hashes"
    )
    print(
        f"ceiling: {cores} cores / {median * 1000:.1f} ms = {cores / median:.0f} resets/s"
        f" ({cores / median * 86400:,.0f} a day)"
    )


if __name__ == "__main__":
    main()
