"""A hashing process of the daemon (see ``smscd._hashing``): hashes the new
passwords it reads on stdin, one per line, and writes each hash and the CPU
time it took on stdout, in order.

    python -m smscd._hash_child MEMORY_KIB TIME_COST PARALLELISM NICE

A line in is a password in hex; a line out is ``<encoded hash> <cpu seconds>``.
It ends at the end of its input: when the daemon closes the pipe, exits or is
killed. Signals are the daemon's to handle (a terminal's Ctrl-C reaches the
whole process group), so it ignores SIGINT and SIGTERM. It imports only the
hasher, never the daemon, so it stays small.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from smscd.reset import HashParams, PasswordHasher

#: Hashes of a throwaway password before the first real one.
WARM_UP_HASHES = 2


def main(argv: list[str]) -> int:
    memory_kib, time_cost, parallelism, nice = (int(arg) for arg in argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Not permitted (a seccomp filter), or not Linux: the process keeps its priority.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    hasher = PasswordHasher(
        HashParams(memory_kib=memory_kib, time_cost=time_cost, parallelism=parallelism)
    )
    # A process's first hashes pay for the pages of argon2's memory (here the
    # first two took 10 and 5 ms more than the next): before a subscriber's.
    for _ in range(WARM_UP_HASHES):
        hasher.hash("warm-up")
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        start = time.process_time()
        encoded = hasher.hash(bytes.fromhex(line.decode("ascii")).decode("utf-8"))
        spent = time.process_time() - start
        out.write(f"{encoded} {spent:.6f}\n".encode("ascii"))
        out.flush()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main(sys.argv[1:]))
