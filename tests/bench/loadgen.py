"""A paced SMPP load generator in a process of its own, for ``bench_latency``.

    python -m tests.bench.loadgen [--receipt-delay S] [--deliver-window N]

It runs the bundled simulator (``smscd.simulator``) on 127.0.0.1 with a free
port and delivery receipts on, and is driven by one JSON object per line on
its stdin; it answers one JSON object per line on its stdout:

    (at start)                                   -> {"event": "listening", "port": P}
    {"op": "wait_bound", "timeout": 30}          -> {"event": "bound"}
    {"op": "run", "first": 0, "rate": 200, "seconds": 30, "drain": 20, "trace": FILE}
                                                 -> {"event": "done", ...figures...}

EOF on stdin ends it. A run sends ``rate * seconds`` MOs (deliver_sm), MO
``i`` at ``start + i / rate``, each from a sender of its own (``845`` and
eight digits from ``first + i``: no duplicates, no rate limits), half help
texts and half mismatches (an unknown code, or the code of one of the
``ACCOUNTS`` accounts ``bench_latency`` imports, from a phone that is not the
account's); each waits for its deliver_sm_resp in a task of its own, as a
steady SMSC does. The latency of an MO is from the moment its deliver_sm is
handed to the simulator to the moment the simulator reads the first submit_sm
to that sender, both on this process's clock. After the last MO the run
waits (``drain`` seconds at most) for every reply and then for the answer to
every receipt of those replies.

Figures of a run: MOs sent, refused (non-zero deliver_sm_resp) and answered;
p50, p95, p99 and max latency in seconds; how late the generator was against
its own schedule (p99 and max: a late generator is a busy one, and its own
delay in reading a reply counts in that reply's latency); receipts sent and acknowledged; the run's
wall time to the last receipt's answer. With ``trace``, one JSON line per MO
goes to FILE: its sender, the wall-clock times (``time.time()``) of its inject
and of the read of its reply, and the reply's message id (which the daemon logs
with ``mt_accepted``), to line the daemon's log up with the generator's clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from smscd.simulator import SimulatorConfig, open_simulator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smscd.simulator import Simulator

__all__ = ["mo", "quantile", "run"]

#: Accounts ``bench_latency.prepare_store`` imports (codes ``7`` + nine digits).
ACCOUNTS = 8000


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank, as ``bench_e2e``); NaN if none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mo(i: int) -> tuple[str, str]:
    """(sender, text) of MO ``i``: even ones help texts, odd ones mismatches."""
    sender = f"845{i:08d}"
    match i % 4:
        case 1:
            return sender, f"BH MK 8{i:09d}"  # no such account
        case 3:
            return sender, f"BH MK 7{(i // 4) % ACCOUNTS:09d}"  # not the registered phone
        case _:
            return sender, f"xin chao {i}"  # help text


def _key(number: str) -> str:
    """A phone number's last nine digits: national and international forms alike."""
    return "".join(c for c in number if c.isdigit())[-9:]


async def run(
    sim: Simulator,
    *,
    first: int,
    rate: float,
    seconds: float,
    drain: float,
    trace: Path | None = None,
) -> dict[str, Any]:
    """One paced run; its figures (see the module docstring)."""
    count = int(rate * seconds)
    replies_before = len(sim.submitted)
    responses_before = len(sim.deliver_responses)
    injected: dict[str, float] = {}
    lags: list[float] = []
    refused = 0
    start = trio.current_time() + 0.05

    async def one(i: int) -> None:
        nonlocal refused
        source, text = mo(first + i)
        now = trio.current_time()
        lags.append(now - (start + i / rate))
        injected[_key(source)] = now
        if await sim.inject_mo(source_addr=source, text=text) != 0:
            refused += 1
            del injected[_key(source)]

    async with trio.open_nursery() as nursery:
        for i in range(count):
            await trio.sleep_until(start + i / rate)
            nursery.start_soon(one, i)
    latencies: dict[str, float] = {}
    message_ids: dict[str, str] = {}
    seen = replies_before
    with trio.move_on_after(drain):
        while True:
            for reply in sim.submitted[seen:]:
                key = _key(reply.event.destination_addr)
                if key in injected and key not in latencies:
                    latencies[key] = reply.received_at - injected[key]
                    message_ids[key] = reply.message_id
            seen = len(sim.submitted)
            if len(latencies) >= len(injected):
                break
            await sim.wait_submitted(seen + 1)
    replies = len(sim.submitted) - replies_before
    # Every MO answered, then the receipt of every reply answered.
    with trio.move_on_after(drain):
        await sim.wait_deliver_responses(responses_before + count + replies)
    receipts_answered = len(sim.deliver_responses) - responses_before - count
    values = list(latencies.values())
    if trace is not None:
        wall = time.time() - trio.current_time()
        with trace.open("w") as out:
            for key, at in injected.items():
                out.write(
                    json.dumps(
                        {
                            "sender": key,
                            "injected": at + wall,
                            "replied": at + latencies[key] + wall if key in latencies else None,
                            "message_id": message_ids.get(key),
                        }
                    )
                    + "\n"
                )
    return {
        "event": "done",
        "sent": count,
        "refused": refused,
        "answered": len(values),
        "replies": replies,
        "receipts_answered": max(0, receipts_answered),
        "wall_s": trio.current_time() - start,
        "p50": quantile(values, 0.50),
        "p95": quantile(values, 0.95),
        "p99": quantile(values, 0.99),
        "max": max(values, default=float("nan")),
        "lag_p99": quantile(lags, 0.99),
        "lag_max": max(lags, default=float("nan")),
    }


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve(config: SimulatorConfig) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = bytearray()
    async with open_simulator(config) as sim, stdin:
        _say({"event": "listening", "port": sim.port})
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                data = await stdin.receive_some(65536)
                if not data:
                    return
                buffer += data
                continue
            request = json.loads(bytes(buffer[:end]))
            del buffer[: end + 1]
            match request["op"]:
                case "wait_bound":
                    with trio.fail_after(float(request.get("timeout", 30))):
                        await sim.wait_bound(1)
                    _say({"event": "bound"})
                case "run":
                    _say(
                        await run(
                            sim,
                            first=int(request["first"]),
                            rate=float(request["rate"]),
                            seconds=float(request["seconds"]),
                            drain=float(request.get("drain", 20)),
                            trace=Path(request["trace"]) if request.get("trace") else None,
                        )
                    )
                case other:
                    raise ValueError(f"unknown op {other!r}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen")
    parser.add_argument("--receipt-delay", type=float, default=0.05)
    parser.add_argument("--deliver-window", type=int, default=64)
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        host="127.0.0.1", receipt_delay=args.receipt_delay, deliver_window=args.deliver_window
    )
    trio.run(_serve, config)


if __name__ == "__main__":
    main()
