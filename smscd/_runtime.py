"""The interpreter's settings for ``smscd run``, made once, after the daemon
is built and before its event loop starts."""

from __future__ import annotations

import gc
import sys

__all__ = ["GIL_SWITCH_INTERVAL_S", "settle_interpreter"]

#: How long a thread that wants the GIL lets its holder run on before asking
#: it to let go (Python's default: 5 ms).
GIL_SWITCH_INTERVAL_S = 0.0005


def settle_interpreter() -> None:
    # What was imported and built so far lives as long as the process: out
    # of the collector's sight, a full collection walks about 7,000 objects
    # instead of 100,000, and stalls the event loop (and the replies in
    # flight) for about 1 ms instead of 30-40.
    gc.freeze()
    # The event loop and the store's threads share the GIL, and the store's
    # thread gives it up for every SQLite call (a dozen per intake
    # transaction): each time the loop is running Python, the transaction
    # waits for it to block on a socket, or for the switch interval. At the
    # default 5 ms about 1% of intake transactions waited 1-10 ms, enough to
    # make the p99 of an MO's answer; a shorter interval bounds each wait,
    # the loop's for the store as well.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
