"""Run ``smscd run`` as a real subprocess against the in-process simulator.

The harness writes a config into a temporary directory, migrates the store (a
SQLite file there, or the PostgreSQL database a test names) and imports accounts
through the real CLI, then starts the daemon with its log captured to a file, so
tests can scan it (and the database) for what must never be there.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tomllib
from contextlib import asynccontextmanager, closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa
import trio
from sqlalchemy.pool import NullPool

from smscd.simulator import Simulator, SimulatorConfig, open_simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = [
    "ACCOUNTS",
    "DaemonProcess",
    "children",
    "free_port",
    "http_get",
    "metric_value",
    "open_daemon",
    "write_config",
]

#: (code, registered phone, e_transaction)
ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("0123456789", "0327000686", "1"),
    ("7901234567", "01627111222", "1"),  # registered in the pre-2018 form
    ("0101010101", "0912345678", "0"),  # not registered for e-transactions
    *((f"55{i:08d}", f"0903{i:06d}", "1") for i in range(200)),
)

SMSCD = [sys.executable, "-m", "smscd"]


def children(pid: int) -> list[int]:
    """The pids of a process's children (Linux /proc): the daemon's hashing processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not: it serves nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(
    directory: Path,
    *,
    smsc_port: int,
    metrics_port: int,
    charging: str = "mo",
    extra: str = "",
    templates: str = "",
    window: int = 10,
    throughput: float = 0,
    database_url: str | None = None,
    response_timeout: float = 2,
) -> Path:
    """``database_url``: the store (default: ``smscd.db`` in ``directory``)."""
    (directory / "bind.password").write_text("secret\n")
    config = directory / "smscd.toml"
    url = database_url or f"sqlite:///{directory / 'smscd.db'}"
    config.write_text(
        f"""
[database]
url = "{url}"

[[smsc]]
name = "sim"
host = "127.0.0.1"
port = {smsc_port}
system_id = "smscd"
password_file = "{directory / "bind.password"}"
window = {window}
throughput = {throughput}
enquire_link_interval = 5
response_timeout = {response_timeout:g}
backoff_initial = 0.1
backoff_max = 0.5
throttle_pause = 0.2
charging = "{charging}"

[reset]
rate_limit_per_day = 3
rate_limit_per_month = 10
duplicate_window = 120
hash_memory_kib = 1024
hash_time_cost = 1

[templates]
{templates}

[log]
format = "json"
level = "info"

[metrics]
listen = "127.0.0.1:{metrics_port}"
{extra}
"""
    )
    return config


def prepare_store(directory: Path, config: Path) -> None:
    csv = directory / "accounts.csv"
    csv.write_text(
        "bhxh_code,phone,e_transaction\n" + "".join(f"{c},{p},{e}\n" for c, p, e in ACCOUNTS)
    )
    for args in (["db", "upgrade"], ["accounts", "import", str(csv)]):
        subprocess.run([*SMSCD, "-c", str(config), *args], check=True, capture_output=True)


@attrs.define
class DaemonProcess:
    directory: Path
    config: Path
    process: trio.Process
    log_path: Path
    sim: Simulator
    metrics_port: int

    @property
    def db_path(self) -> Path:
        return self.directory / "smscd.db"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def database_url(self) -> str:
        """The store's URL, as the daemon's config names it."""
        with self.config.open("rb") as file:
            url: str = tomllib.load(file)["database"]["url"]
        return url

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Rows of ``sql`` (``?`` placeholders) from the daemon's store, SQLite
        or PostgreSQL."""
        url = self.database_url
        if url.startswith("sqlite"):
            with closing(sqlite3.connect(self.db_path)) as db:
                return db.execute(sql, params).fetchall()
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                if params:  # psycopg's placeholders are %s, and a literal % is %%
                    sql = sql.replace("%", "%%").replace("?", "%s")
                    result = conn.exec_driver_sql(sql, tuple(params))
                else:
                    result = conn.exec_driver_sql(sql)
                return [tuple(row) for row in result]
        finally:
            engine.dispose()

    async def wait_log(self, needle: str, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while needle not in self.log_text():
                await trio.sleep(0.05)

    async def wait_exit(self, timeout: float = 15.0) -> int:
        with trio.fail_after(timeout):
            return await self.process.wait()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)


async def start_daemon(
    nursery: trio.Nursery,
    directory: Path,
    config: Path,
    sim: Simulator,
    metrics_port: int,
    *,
    env: dict[str, str] | None = None,
    log_name: str = "daemon.log",
) -> DaemonProcess:
    log_path = directory / log_name
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [*SMSCD, "-c", str(config), "run"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
                check=False,
            )
        )
    daemon = DaemonProcess(
        directory=directory,
        config=config,
        process=process,
        log_path=log_path,
        sim=sim,
        metrics_port=metrics_port,
    )
    await daemon.wait_log('"daemon_ready"', timeout=20)
    return daemon


@asynccontextmanager
async def open_daemon(
    tmp_path: Path,
    *,
    sim_config: SimulatorConfig | None = None,
    charging: str = "mo",
    templates: str = "",
    env: dict[str, str] | None = None,
    window: int = 10,
    throughput: float = 0,
    extra: str = "",
    database_url: str | None = None,
    response_timeout: float = 2,
) -> AsyncIterator[DaemonProcess]:
    """Simulator + migrated store + ``smscd run``; the daemon is SIGKILLed on exit
    if a test left it running. ``database_url``: an empty store to use instead
    of a SQLite file in ``tmp_path`` (e.g. a PostgreSQL schema of its own)."""
    sim_config = sim_config or SimulatorConfig(receipt_delay=0.05)
    async with open_simulator(sim_config) as sim, trio.open_nursery() as nursery:
        metrics_port = free_port()
        config = write_config(
            tmp_path,
            smsc_port=sim.port,
            metrics_port=metrics_port,
            charging=charging,
            templates=templates,
            window=window,
            throughput=throughput,
            extra=extra,
            database_url=database_url,
            response_timeout=response_timeout,
        )
        await trio.to_thread.run_sync(prepare_store, tmp_path, config)
        daemon = await start_daemon(nursery, tmp_path, config, sim, metrics_port, env=env)
        await sim.wait_bound(1)
        try:
            yield daemon
        finally:
            if daemon.process.returncode is None:
                daemon.signal(signal.SIGKILL)
            nursery.cancel_scope.cancel()


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def metric_value(page: bytes, name: str) -> float:
    """The value of an unlabelled sample ``name`` on a Prometheus text page."""
    for line in page.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)
