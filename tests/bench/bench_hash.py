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
import threading
import time

from smscd.reset import HashParams, PasswordHasher, new_password

__all__ = ["ROUNDS", "main", "measure", "measure_parallel"]

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


def measure_parallel(params: HashParams, threads: int, seconds: float = 3.0) -> float:
    """Hashes per second of ``threads`` threads hashing at once for about
    ``seconds`` (argon2 releases the GIL): what the cores really give, memory
    bandwidth and all, as against ``threads / measure()``."""
    hasher = PasswordHasher(params)
    hasher.hash(new_password())
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < deadline:
            hasher.hash(new_password())
            counts[i] += 1

    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


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
    alone = measure_parallel(params, cores)
    print(
        f"{cores} threads hashing at once: {alone:.0f} hashes/s"
        f" ({alone * median / cores:.0%} of that ceiling)"
    )


if __name__ == "__main__":
    main()
