"""Codec throughput: encode + decode round trips per second for submit_sm and deliver_sm.

Run with ``python -m tests.bench.bench_codec``. Each figure is the median of 5 runs
of N PDUs, N chosen from a short calibration so the whole benchmark stays within a
few seconds on a slow machine. ``encode``/``decode`` take the codec's fast paths;
the same PDUs through ``reference_encode``/``reference_decode`` (smpplib and the
table-driven walker, what the fast paths must match byte for byte) are measured
too, for comparison.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

from smscd.smpp import DeliverSm, Event, SubmitSm, Tlv, decode, encode
from smscd.smpp._codec import reference_decode, reference_encode

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["main"]

RUNS = 5
#: Seconds one run of one PDU type should take (2 types x 5 runs x 0.25 s = 2.5 s).
TARGET_RUN_SECONDS = 0.25

SUBMIT = SubmitSm(
    sequence=1234,
    source_addr_ton=5,
    source_addr="8079",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="84912345678",
    registered_delivery=1,
    short_message=b"Cap lai mat khau thanh cong. Tai khoan: 0123456789/Mat khau: 482913",
)
DELIVER = DeliverSm(
    sequence=5678,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="84912345678",
    destination_addr="8079",
    esm_class=0x04,
    short_message=(
        b"id:1d305b4c sub:001 dlvrd:001 submit date:2110151230 done date:2110151231 "
        b"stat:DELIVRD err:000 text:Cap lai mat khau"
    ),
    tlvs=(Tlv(tag=0x001E, value=b"1d305b4c\x00"), Tlv(tag=0x0427, value=b"\x02")),
)


def _run(
    event: Event,
    n: int,
    clock: Callable[[], float],
    codec: tuple[Callable[[Event], bytes], Callable[[bytes], Event]] = (encode, decode),
) -> float:
    """Seconds for n encode+decode round trips."""
    enc, dec = codec
    start = clock()
    for _ in range(n):
        dec(enc(event))
    return clock() - start


def measure(
    event: Event,
    clock: Callable[[], float] = time.perf_counter,
    codec: tuple[Callable[[Event], bytes], Callable[[bytes], Event]] = (encode, decode),
) -> tuple[float, int]:
    """(median PDUs per second, N) for encode+decode of ``event``."""
    probe = 200
    per_pdu = max(_run(event, probe, clock, codec) / probe, 1e-7)
    n = max(100, int(TARGET_RUN_SECONDS / per_pdu))
    rates = [n / max(_run(event, n, clock, codec), 1e-9) for _ in range(RUNS)]
    return statistics.median(rates), n


def main() -> None:
    for name, event in (("submit_sm", SUBMIT), ("deliver_sm", DELIVER)):
        rate, n = measure(event)
        reference, _ = measure(event, codec=(reference_encode, reference_decode))
        print(
            f"{name:<10} encode+decode: {rate:>10,.0f} PDUs/s (median of {RUNS} runs of {n:,};"
            f" smpplib reference path {reference:,.0f}/s)"
        )


if __name__ == "__main__":
    main()
