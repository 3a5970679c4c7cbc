"""Benchmark: the HTTP API of a real ``smscd run``, on SQLite, the simulator
accepting every submit_sm.

* (a) ``POST /v1/messages`` at full speed: ``CLIENTS`` concurrent keep-alive
  connections post ``MESSAGES`` distinct messages (each a new ``client_ref``);
  a 202 is a durable answer (the MT and its charge committed). Printed: 202s
  per second (first request to last answer), the latency p50/p99 of one
  request, and how many the SMSC had accepted when the last 202 came (the
  outbox works meanwhile).
* (b) ``POST /v1/resets`` paced at 20 calls a second for ``RESET_SECONDS``,
  each a reset of a distinct account from its registered phone, at the
  DEFAULT argon2id cost (19 MiB, t=2): the latency p50/p99/max of one call.

The client (httpx) runs in this process and shares the machine's two cores
with the daemon and the simulator: its CPU is part of every figure.

    python -m tests.bench.bench_api [ab]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

from smscd.simulator import SimulatorConfig, open_simulator
from tests.integration.daemon_harness import (
    SMSCD,
    children,
    free_port,
    open_daemon,
    prepare_store,
    start_daemon,
    write_config,
)

CLIENTS = 32
MESSAGES = 4000
RESET_RATE = 20.0
RESET_SECONDS = 10.0
#: The harness's accounts ``55{i:08d}`` registered to ``0903{i:06d}``.
RESET_ACCOUNTS = 200


def _api_config(port: int) -> str:
    return f'\n[api]\nlisten = "127.0.0.1:{port}"\ndefault_route = "sim"\n'


def _add_client(config: Path, name: str, scopes: str) -> str:
    done = subprocess.run(
        [*SMSCD, "-c", str(config), "clients", "add", name, "--scopes", scopes, "--rate", "10000"],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _KeepAlive:
    """The load generator's HTTP/1.1 client: one keep-alive connection, the
    request bytes built once, the response read by its Content-Length. Far
    cheaper than a full client, so that the machine's CPU goes to the daemon
    (the callbacks of the daemon itself use httpx)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def post(self, request: bytes) -> int:
        await self.stream.send_all(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self.stream.receive_some(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await self.stream.receive_some(65536)
        self.buffer = rest[length:]
        return int(head.split(b" ", 2)[1])


def _request(token: str, body: bytes) -> bytes:
    return (
        b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"authorization: Bearer " + token.encode() + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def _messages(tmp: Path) -> None:
    port = free_port()
    async with open_daemon(tmp, extra=_api_config(port)) as daemon:
        token = await trio.to_thread.run_sync(_add_client, daemon.config, "bench", "messages")
        requests = [
            _request(
                token,
                (
                    f'{{"to": "0903{n % 1000000:06d}", "text": "Ma OTP VssID cua ban la'
                    f' {n:06d}", "client_ref": "b{n}"}}'
                ).encode(),
            )
            for n in range(MESSAGES)
        ]
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        send, receive = trio.open_memory_channel[bytes](MESSAGES)
        for request in requests:
            send.send_nowait(request)
        send.close()

        async def poster() -> None:
            client = _KeepAlive(await trio.open_tcp_stream("127.0.0.1", port))
            async with client.stream:
                async for request in receive:
                    started = time.perf_counter()
                    status = await client.post(request)
                    latencies.append(time.perf_counter() - started)
                    statuses[status] = statuses.get(status, 0) + 1

        pid = daemon.process.pid
        began = time.perf_counter()
        cpu_before = _cpu_s(pid), sum(map(_cpu_s, children(pid))), time.process_time()
        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for _ in range(CLIENTS):
                    nursery.start_soon(poster)
        elapsed = time.perf_counter() - began
        daemon_cpu = _cpu_s(pid) - cpu_before[0]
        children_cpu = sum(map(_cpu_s, children(pid))) - cpu_before[1]
        here_cpu = time.process_time() - cpu_before[2]
        submitted = len(daemon.sim.submitted)
        print(
            f"(a) POST /v1/messages: {MESSAGES} from {CLIENTS} connections:"
            f" {statuses.get(202, 0) / elapsed:.0f} accepted (202) per second;"
            f" latency p50 {_pct(latencies, 0.5) * 1000:.1f} ms,"
            f" p99 {_pct(latencies, 0.99) * 1000:.1f} ms;"
            f" statuses {dict(sorted(statuses.items()))};"
            f" {submitted} already accepted by the SMSC at the last 202;"
            f" CPU per 1,000 messages: daemon {daemon_cpu * 1000 / MESSAGES:.2f} s,"
            f" its API front (and idle hashing processes) {children_cpu * 1000 / MESSAGES:.2f} s,"
            f" this process (load generator and simulator) {here_cpu * 1000 / MESSAGES:.2f} s"
        )


async def _resets(tmp: Path) -> None:
    port = free_port()
    async with open_simulator(SimulatorConfig(receipt_delay=0.05)) as sim:
        config = write_config(
            tmp, smsc_port=sim.port, metrics_port=free_port(), extra=_api_config(port)
        )
        # The default argon2id cost, not the harness's cheap one.
        config.write_text(
            config.read_text().replace("hash_memory_kib = 1024\nhash_time_cost = 1\n", "")
        )
        await trio.to_thread.run_sync(prepare_store, tmp, config)
        async with trio.open_nursery() as nursery:
            again = await start_daemon(nursery, tmp, config, sim, free_port())
            token = await trio.to_thread.run_sync(_add_client, config, "hotline", "resets")
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            latencies: list[float] = []
            outcomes: dict[str, int] = {}
            calls = int(RESET_RATE * RESET_SECONDS)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

                async def one(n: int) -> None:
                    i = n % RESET_ACCOUNTS
                    body = (
                        f'{{"msisdn": "0903{i:06d}", "bhxh_code": "55{i:08d}",'
                        ' "channel": "hotline"}'
                    )
                    started = time.perf_counter()
                    response = await http.post("/v1/resets", content=body, headers=headers)
                    latencies.append(time.perf_counter() - started)
                    outcome = response.json().get("outcome", str(response.status_code))
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

                with trio.fail_after(RESET_SECONDS + 120):
                    async with trio.open_nursery() as calls_nursery:
                        start = trio.current_time()
                        for n in range(calls):
                            await trio.sleep_until(start + n / RESET_RATE)
                            calls_nursery.start_soon(one, n)
            again.signal(signal.SIGTERM)
            await again.wait_exit()
            nursery.cancel_scope.cancel()
    print(
        f"(b) POST /v1/resets at {RESET_RATE:g}/s for {RESET_SECONDS:g} s, default argon2id:"
        f" p50 {_pct(latencies, 0.5) * 1000:.0f} ms, p99 {_pct(latencies, 0.99) * 1000:.0f} ms,"
        f" max {max(latencies) * 1000:.0f} ms; outcomes {dict(sorted(outcomes.items()))};"
        f" {statistics.fmean(latencies) * 1000:.0f} ms mean"
    )


async def _bench(keys: str) -> None:
    if "a" in keys:
        with tempfile.TemporaryDirectory(prefix="smscd-bench-") as tmp:
            await _messages(Path(tmp))
    if "b" in keys:
        with tempfile.TemporaryDirectory(prefix="smscd-bench-") as tmp:
            await _resets(Path(tmp))


def main(keys: str = "ab") -> None:
    trio.run(_bench, keys)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ab")
