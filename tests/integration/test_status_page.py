"""The operator's status page in a real browser: Debian's headless Chromium,
driven by Playwright, against ``smscd run`` and the simulator.

Playwright's sync API blocks, so the whole browser session runs in one worker
thread (``trio.to_thread.run_sync``) while the simulator keeps running in the
test's event loop; the thread calls back into it (``trio.from_thread.run``) to
kill the SMSC. No browser is downloaded: the test uses /usr/bin/chromium, and
skips without it only outside CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from playwright.sync_api import sync_playwright
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from smscd._metrics import Metrics
from smscd.web import (
    QueueStatus,
    StatusBoard,
    StatusSnapshot,
    StatusUnavailable,
    StoreStatus,
    create_app,
    fetch_status,
    serve_web,
)
from tests.integration.daemon_harness import (
    SMSCD,
    DaemonProcess,
    free_port,
    http_get,
    open_daemon,
)

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator

    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: What the MOs below come to on the page's "MOs by outcome" chart.
EXPECTED_MO = {
    "reset_ok": 3,
    "mismatch": 1,
    "invalid_code": 1,
    "bad_syntax": 1,
    "rate_limited": 1,
    "duplicate": 1,
    "tempfail": 0,
}
#: Every MO but the duplicate is answered (and charged 1,000 VND).
ANSWERED = 7

#: The DOM of the charts: per chart, per series, the legend's total and the
#: sum of the bars drawn.
READ_CHARTS = """() => Object.fromEntries(
  [...document.querySelectorAll("figure.chart")].map((figure) => [
    figure.dataset.chart,
    Object.fromEntries([...figure.querySelectorAll(".legend li")].map((item) => [
      item.dataset.series,
      {
        legend: Number(item.dataset.total),
        bars: [...figure.querySelectorAll("rect.bar")]
          .filter((bar) => bar.dataset.series === item.dataset.series)
          .reduce((sum, bar) => sum + Number(bar.dataset.value), 0),
      },
    ])),
  ]))"""


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


async def answered(daemon: DaemonProcess, source: str, text: str) -> None:
    """Inject one MO and wait for the reply to ``source``."""
    before = len(daemon.sim.submitted)
    assert await daemon.sim.inject_mo(source_addr=source, text=text) == 0
    with trio.fail_after(10):
        while not any(sm.event.destination_addr == source for sm in daemon.sim.submitted[before:]):
            await trio.sleep(0.02)


async def smscd_status(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [*SMSCD, "-c", str(daemon.config), "status", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def totals(document: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per chart of a status document, per series, the sum of its values."""
    return {
        chart["key"]: {series["name"]: sum(series["values"]) for series in chart["series"]}
        for chart in document["charts"]
    }


def dom_totals(page: Page) -> dict[str, dict[str, int]]:
    """The same from the page, checking that each legend agrees with its bars."""
    charts: dict[str, dict[str, dict[str, int]]] = page.evaluate(READ_CHARTS)
    for key, series in charts.items():
        for name, figures in series.items():
            assert figures["legend"] == figures["bars"], (key, name, figures)
    return {key: {name: f["legend"] for name, f in s.items()} for key, s in charts.items()}


def browse(url: str, directory: Path, kill_smsc: Any) -> dict[str, Any]:
    """The browser session (in a worker thread): what it saw."""
    seen: dict[str, Any] = {"console_errors": []}
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(directory / "chromium-profile"),
            executable_path=str(chromium()),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)

            def console(message: Any) -> None:
                if message.type == "error":
                    seen["console_errors"].append(message.text)

            page.on("console", console)
            page.on("pageerror", lambda error: seen["console_errors"].append(str(error)))
            response = page.goto(url)
            assert response is not None
            seen["headers"] = response.headers
            page.wait_for_selector('#binds tr[data-carrier="sim"] [data-state="bound"]')
            seen["bound_text"] = page.inner_text('#binds tr[data-carrier="sim"]')
            page.wait_for_selector('figure.chart[data-chart="mo"]')

            # The DOM and /status.json agree (two reads may straddle a refresh:
            # read until a pair agrees).
            for _ in range(20):
                dom = dom_totals(page)
                document = json.loads(page.request.get(url + "status.json").text())
                if dom == totals(document):
                    break
                page.wait_for_timeout(300)
            seen["dom"], seen["document"] = dom, document
            page.screenshot(path=str(directory / "status-page.png"), full_page=True)

            kill_smsc()
            start = time.monotonic()
            page.wait_for_selector(
                '#binds tr[data-carrier="sim"] [data-state="reconnecting"]', timeout=5_000
            )
            seen["reconnecting_after_s"] = time.monotonic() - start
            page.wait_for_selector('#events td:text-is("link_disconnected")', timeout=5_000)
            seen["events_text"] = page.inner_text("#events")
            seen["verdict"] = page.inner_text("#verdict")
            page.screenshot(path=str(directory / "status-page-reconnecting.png"), full_page=True)
        finally:
            context.close()
    return seen


async def test_the_status_page_shows_binds_charts_and_a_killed_smsc(tmp_path: Path) -> None:
    chromium()
    with trio.fail_after(120):
        async with open_daemon(tmp_path) as daemon:
            # Three resets of one account, then a fourth over the daily limit.
            for text in ("BH MK 0123456789", "bh mk 0123456789", "BH-MK-0123456789"):
                await answered(daemon, "84327000686", text)
            await answered(daemon, "84327000686", "BH MK: 0123456789.")
            await answered(daemon, "84911111111", "BH MK 0123456789")  # mismatch
            await answered(daemon, "84911111113", "BH MK 12345")  # invalid code
            await answered(daemon, "84911111114", "xin chao")  # help
            # The SMSC delivers the mismatch again: a duplicate, not answered.
            assert (
                await daemon.sim.inject_mo(source_addr="84911111111", text="BH MK 0123456789") == 0
            )
            await daemon.wait_log('"mo_duplicate"')
            with trio.fail_after(10):  # every reply's receipt is in
                while daemon.query("SELECT COUNT(*) FROM receipts") != [(ANSWERED,)]:
                    await trio.sleep(0.05)

            async def kill() -> None:
                daemon.sim.black_hole(True)  # it reads, it never answers a bind
                await daemon.sim.drop_connections()

            # `smscd status` reads the same document: a monitoring check.
            healthy = await smscd_status(daemon)
            assert (healthy.returncode, healthy.stderr) == (0, b"")
            table = healthy.stdout.decode().splitlines()
            assert table[0].endswith(": healthy")
            assert table[4].split()[:2] == ["sim", "bound"]
            as_json = await smscd_status(daemon, "--json")
            assert json.loads(as_json.stdout)["binds"][0]["state"] == "bound"

            url = f"http://127.0.0.1:{daemon.metrics_port}/"
            seen = await trio.to_thread.run_sync(
                browse, url, tmp_path, lambda: trio.from_thread.run(kill)
            )
            _status, health = await http_get(daemon.metrics_port, "/healthz")
            assert health == b"link sim not bound\n"
            unhealthy = await smscd_status(daemon)
            assert unhealthy.returncode == 1
            assert unhealthy.stdout.decode().splitlines()[0].endswith(": NOT HEALTHY")
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
            gone = await smscd_status(daemon)
            assert (gone.returncode, gone.stdout) == (1, b"")
            assert gone.stderr.decode() == (
                f"smscd: status: no daemon answers at http://127.0.0.1:{daemon.metrics_port}"
                "/status.json (Connection refused)\n"
            )

    assert seen["console_errors"] == []
    headers = seen["headers"]
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert headers["x-content-type-options"] == "nosniff"
    assert seen["bound_text"].split("\t")[:2] == ["sim", "bound"]

    document = seen["document"]
    assert seen["dom"] == totals(document)
    assert totals(document)["mo"] == EXPECTED_MO
    assert totals(document)["replies"] == {"accepted": ANSWERED, "retry": 0, "failed": 0}
    assert totals(document)["receipts"] == {"DELIVRD": ANSWERED}
    assert totals(document)["resets_daily"] == {"sim": 3}
    assert totals(document)["charges_daily"] == {"sim": ANSWERED * 1000}
    (bind,) = document["binds"]
    assert (bind["state"], bind["window"], bind["reconnects_today"]) == ("bound", 10, 0)
    assert document["healthy"] is True

    assert seen["reconnecting_after_s"] < 5
    assert seen["verdict"] == "NOT HEALTHY"
    assert "sim" in seen["events_text"]
    # Phones only masked, and no message text anywhere on the page's data.
    raw = json.dumps(document)
    assert "0327000686" not in raw and "BH MK" not in raw
    assert (tmp_path / "status-page.png").stat().st_size > 10_000


# --- the HTTP listener alone, with a stand-in for the daemon ----------------------------


@attrs.define
class FakeDaemon:
    """A StatusSource with a real metrics registry and an empty board."""

    metrics: Metrics = attrs.field(factory=Metrics)
    problems: list[str] = attrs.field(factory=list)
    snapshots: int = 0

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    async def health_problems(self) -> list[str]:
        return self.problems

    async def status(self) -> StatusSnapshot:
        self.snapshots += 1
        await trio.sleep(0.05)  # concurrent requests overlap
        return StatusBoard().snapshot(
            now=datetime.now(UTC),
            totals=self.metrics.totals(),
            links=[],
            queues=QueueStatus(
                outbox_depth=0, outbox_oldest_s=None, hashing_queue=0, intake_backlog=0
            ),
            store=StoreStatus(ok=True),
        )


@asynccontextmanager
async def serving(daemon: FakeDaemon, *, token: str | None = None) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_web, create_app(daemon, token=token), "127.0.0.1:0")
        yield port
        nursery.cancel_scope.cancel()


async def request(
    port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 request: (status, headers with lower-case names, body)."""
    lines = [f"{method} {path} HTTP/1.0", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if not any(k.lower() == "host" for k in headers or {}):
        lines.append(f"Host: 127.0.0.1:{port}")
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    return int(status_line.split()[1]), fields, body


async def test_metrics_and_healthz_answer_as_prometheus_and_probes_expect() -> None:
    daemon = FakeDaemon()
    daemon.metrics.mo.labels(carrier="viettel", outcome="reset_ok").inc(3)
    with trio.fail_after(20):
        async with serving(daemon) as port:
            assert port > 0  # port 0: the one bound is reported
            status, headers, body = await request(port, "/metrics", headers={"Host": "x"})
            assert status == 200
            assert headers["content-type"] == CONTENT_TYPE_LATEST
            assert body == daemon.metrics.render()
            assert b'smscd_mo_total{carrier="viettel",outcome="reset_ok"} 3.0' in body
            assert headers["x-content-type-options"] == "nosniff"
            assert "server" not in headers
            status, headers, body = await request(port, "/metrics", method="HEAD")
            assert (status, body) == (200, b"")
            assert await http_get(port, "/healthz") == (200, b"ok\n")
            daemon.problems = ["link viettel not bound", "store: database error"]
            assert await http_get(port, "/healthz") == (
                503,
                b"link viettel not bound\nstore: database error\n",
            )
            assert (await request(port, "/metrics", method="POST"))[0] == 405
            assert (await request(port, "/nothing"))[0] == 404
            assert (await request(port, "/static/../../etc/passwd"))[0] == 404
            assert (await request(port, "/static/nothing.js"))[0] == 404


async def test_the_page_and_its_json_are_read_only_and_locked_down() -> None:
    daemon = FakeDaemon()
    with trio.fail_after(20):
        async with serving(daemon) as port:
            status, headers, body = await request(port, "/")
            assert status == 200
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert headers["content-security-policy"] == (
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
                " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            )
            assert headers["x-frame-options"] == "DENY"
            # No inline script or style: the policy would block them.
            assert b"<script>" not in body and b"style=" not in body and b"<style" not in body
            assert b'data-refresh-ms="2000"' in body
            status, headers, _body = await request(port, "/static/status.js")
            assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
            status, headers, body = await request(port, "/status.json")
            assert (status, headers["cache-control"]) == (200, "no-store")
            assert json.loads(body)["healthy"] is True
            assert (await request(port, "/status.json", method="POST"))[0] == 405


async def test_without_a_token_the_page_answers_loopback_names_only() -> None:
    with trio.fail_after(20):
        async with serving(FakeDaemon()) as port:
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
                assert (await request(port, "/status.json", headers={"Host": host}))[0] == 200
            # A page elsewhere that rebinds its name to 127.0.0.1 cannot read it.
            for host in ("attacker.example", f"attacker.example:{port}", "10.0.0.1"):
                status, _headers, _body = await request(port, "/", headers={"Host": host})
                assert status == 403
                assert (await request(port, "/status.json", headers={"Host": host}))[0] == 403
            assert (await request(port, "/metrics", headers={"Host": "attacker.example"}))[0] == 200


async def test_a_token_guards_the_page_and_its_json_but_not_metrics() -> None:
    token = "k7Qz-9vLr-2mWx-8sTb"
    basic = base64.b64encode(f"operator:{token}".encode()).decode()
    with trio.fail_after(20):
        async with serving(FakeDaemon(), token=token) as port:
            for path in ("/", "/status.json", "/static/status.js"):
                status, headers, _body = await request(port, path)
                assert status == 401
                assert headers["www-authenticate"] == (
                    'Bearer realm="smscd", Basic realm="smscd", charset="UTF-8"'
                )
                wrong = {"Authorization": "Bearer not-the-token"}
                assert (await request(port, path, headers=wrong))[0] == 401
                right = {"Authorization": f"Bearer {token}"}
                assert (await request(port, path, headers=right))[0] == 200
                # A browser asks the operator and sends it as Basic (any user name).
                browser = {"Authorization": f"Basic {basic}", "Host": "ops.example:9108"}
                assert (await request(port, path, headers=browser))[0] == 200
            assert (await request(port, "/metrics"))[0] == 200
            assert (await request(port, "/healthz"))[0] == 200
            document = await trio.to_thread.run_sync(
                lambda: fetch_status(f"127.0.0.1:{port}", token=token)
            )
            assert document["healthy"] is True
            with pytest.raises(
                StatusUnavailable,
                match=r"status.json answered 401 Unauthorized: it wants \[metrics\] token_file",
            ):
                await trio.to_thread.run_sync(lambda: fetch_status(f"127.0.0.1:{port}", token=None))


async def test_open_pages_share_one_snapshot_a_second() -> None:
    daemon = FakeDaemon()
    with trio.fail_after(20):
        async with serving(daemon) as port, trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(request, port, "/status.json")
    assert daemon.snapshots == 1


def test_status_of_a_daemon_that_does_not_answer(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StatusUnavailable) as info:
        fetch_status(f"127.0.0.1:{port}", token=None, timeout=2)
    assert str(info.value) == (
        f"no daemon answers at http://127.0.0.1:{port}/status.json (Connection refused)"
    )
