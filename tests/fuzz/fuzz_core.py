"""The core fuzzer: mutated PDUs into the ESME side of the sans-I/O SMPP core.

Each case is one PDU from :func:`tests.fuzz.mutate.mutations` (the named hostile
PDUs and every fixture come first), fed to fresh ESME Connections whole, in a few
chunks cut at random points and -- for PDUs up to :data:`BYTEWISE_MAX` octets,
one case in :data:`BYTEWISE_EVERY` -- one byte at a time, then checked against
every invariant of :mod:`tests.fuzz.invariants`. The run stops after ``cases``
cases or ``seconds`` seconds, whichever comes first, and prints the cases
tried, the rate, every kind of refusal met and every failure (the first few of
each kind in full, as hex, to be replayed). Exit status 1 when anything failed.
"""

from __future__ import annotations

import collections
import random
import time
from typing import TYPE_CHECKING

from tests.fuzz.invariants import check_pdu
from tests.fuzz.mutate import FIXTURES, HOSTILE_PDUS, mutations

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

__all__ = ["add_arguments", "main", "run"]

#: Byte-by-byte feeding is done for PDUs up to this size...
BYTEWISE_MAX = 400
#: ...once every this many cases (it costs one next_event() per octet).
BYTEWISE_EVERY = 8
#: Failures shown in full per distinct message.
SHOWN_PER_FAILURE = 3
#: A progress line every this many cases.
PROGRESS_EVERY = 100_000


def _cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    for name, raw in HOSTILE_PDUS + FIXTURES:
        yield name, raw
    for index, raw in enumerate(mutations(rng)):
        yield f"mutation {index}", raw


def run(*, cases: int, seconds: float, seed: int, out: list[str] | None = None) -> int:
    """Fuzz for at most ``cases`` cases and ``seconds`` seconds; print (or append
    to ``out``) the report; return the number of failed cases."""

    def say(line: str) -> None:
        if out is None:
            print(line, flush=True)
        else:
            out.append(line)

    rng = random.Random(seed)
    kinds: collections.Counter[str] = collections.Counter()
    failures: dict[str, list[tuple[str, bytes]]] = collections.defaultdict(list)
    failed = 0
    tried = 0
    started = time.monotonic()
    deadline = started + seconds
    for name, raw in _cases(rng):
        if tried % PROGRESS_EVERY == 0 and tried:
            elapsed = time.monotonic() - started
            say(f"... {tried} cases, {tried / elapsed:.0f}/s, {failed} failed")
        if tried >= cases or (tried % 64 == 0 and time.monotonic() >= deadline):
            break
        tried += 1
        n_cuts = rng.randrange(1, 4)
        cuts = tuple(rng.randrange(1, len(raw) + 2) for _ in range(n_cuts))
        bytewise = len(raw) <= BYTEWISE_MAX and tried % BYTEWISE_EVERY == 0
        result = check_pdu(raw, cuts=cuts, bytewise=bytewise)
        kinds.update(result.kinds)
        if result.failures:
            failed += 1
            for failure in set(result.failures):
                failures[failure].append((name, raw))
    elapsed = time.monotonic() - started
    say(f"core fuzz: seed {seed}")
    say(f"cases tried: {tried}")
    say(f"time: {elapsed:.1f} s ({tried / elapsed if elapsed else 0.0:.0f} cases/s)")
    say(f"distinct refusal kinds: {len(kinds)}")
    for kind, count in sorted(kinds.items()):
        say(f"  {kind}: {count}")
    say(f"failed cases: {failed}")
    for failure, where in sorted(failures.items()):
        say(f"  FAILURE ({len(where)} cases): {failure}")
        for name, raw in where[:SHOWN_PER_FAILURE]:
            shown = raw.hex() if len(raw) <= 512 else raw[:512].hex() + "..."
            say(f"    {name}: {shown}")
    return failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=100_000, help="stop after this many cases")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=8079, help="the mutator's seed")


def main(args: argparse.Namespace) -> int:
    """Run from parsed arguments; the process exit status."""
    return 1 if run(cases=args.cases, seconds=args.seconds, seed=args.seed) else 0
