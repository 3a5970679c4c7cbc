"""End to end: ``POST /v1/messages`` and ``GET /v1/messages/{id}`` through a
real ``smscd run`` and the simulator, over loopback sockets.

An OTP and a password SMS reach the SMSC with the client's sender id and
text, their receipts make them delivered, their charges are the client's; a
repeated ``client_ref`` sends one SMS; every refused request queues nothing;
a ``kill -9`` right after a 202 still sends the SMS, once; a client's
callback URL gets the final state, again after it first answered 500.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.daemon_harness import (
    SMSCD,
    DaemonProcess,
    alive,
    free_port,
    http_get,
    open_daemon,
    start_daemon,
)

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.requests import Request

pytestmark = pytest.mark.slow

OTP_TEMPLATE = "Ma OTP VssID cua ban la {otp}"


def api_config(port: int) -> str:
    return f"""
[api]
listen = "127.0.0.1:{port}"
default_route = "sim"
max_body = 2048

[api.routes]
"8432" = "sim"

[api.templates]
otp = "{OTP_TEMPLATE}"
"""


def add_client(daemon: DaemonProcess, name: str, *args: str) -> str:
    """``smscd clients add``; returns the token it printed."""
    done = subprocess.run(
        [*SMSCD, "-c", str(daemon.config), "clients", "add", name, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    token = done.stdout.strip().splitlines()[-1]
    assert len(token) == 43
    return token


def outbox_rows(daemon: DaemonProcess) -> int:
    ((count,),) = daemon.query("SELECT COUNT(*) FROM outbound_messages")
    assert isinstance(count, int)
    return count


async def wait_state(
    http: httpx.AsyncClient, token: str, message_id: int, state: str
) -> dict[str, Any]:
    with trio.fail_after(15):
        while True:
            response = await http.get(
                f"/v1/messages/{message_id}", headers={"authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            if body["state"] == state:
                return body
            await trio.sleep(0.05)


async def post(http: httpx.AsyncClient, token: str, body: object, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with trio.fail_after(10):
        return await http.post(
            "/v1/messages",
            content=content,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/json",
                **headers,
            },
        )


async def test_an_otp_and_a_password_reach_the_smsc_with_the_sender_id(tmp_path: Path) -> None:
    port = free_port()
    async with open_daemon(tmp_path, extra=api_config(port), charging="mt") as daemon:
        token = await trio.to_thread.run_sync(
            partial(
                add_client,
                daemon,
                "vssid-app",
                "--scopes",
                "messages",
                "--sender",
                "VssID",
                "--price",
                "300",
            )
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            otp = await post(
                http,
                token,
                {
                    "to": "0327000686",
                    "template": "otp",
                    "params": {"otp": "482913"},
                    "client_ref": "otp-1",
                },
            )
            password = await post(
                http,
                token,
                {
                    "to": "+84 912 345 678",
                    "text": "Mat khau moi cua ban la 5821",
                    "client_ref": "pw-1",
                },
            )
            vietnamese = await post(
                http,
                token,
                {"to": "0903000001", "text": "Mật khẩu mới của bạn là 5821", "client_ref": "vi-1"},
            )
            assert otp.status_code == password.status_code == vietnamese.status_code == 202
            assert otp.json() == {"id": otp.json()["id"], "client_ref": "otp-1", "state": "queued"}
            with trio.fail_after(10):
                first = await daemon.sim.wait_submitted_to("84327000686")
                second = await daemon.sim.wait_submitted_to("84912345678")
            for sm in (first, second):
                assert (sm.event.source_addr, sm.event.source_addr_ton) == ("VssID", 5)
                assert (sm.event.source_addr_npi, sm.event.data_coding) == (0, 0)
                assert (sm.event.dest_addr_ton, sm.event.dest_addr_npi) == (1, 1)
            with trio.fail_after(10):
                third = await daemon.sim.wait_submitted_to("84903000001")
            # Not GSM-7: UCS-2, data_coding 8, one SMS of 28 characters.
            assert third.event.data_coding == 8
            assert third.event.short_message == "Mật khẩu mới của bạn là 5821".encode("utf-16-be")
            assert third.text == "Mật khẩu mới của bạn là 5821"
            assert first.event.short_message == b"Ma OTP VssID cua ban la 482913"
            assert second.event.short_message == b"Mat khau moi cua ban la 5821"
            delivered = await wait_state(http, token, otp.json()["id"], "delivered")
            assert delivered["receipt_stat"] == "DELIVRD"
            assert delivered["to"] == "84327000686"
            assert delivered["client_ref"] == "otp-1"
            await wait_state(http, token, password.json()["id"], "delivered")
            await wait_state(http, token, vietnamese.json()["id"], "delivered")
        # The bodies are masked once accepted; the charges are the client's, final.
        assert (
            daemon.query(
                "SELECT o.body LIKE '%482913%', c.channel, c.amount_vnd, c.mode, c.state"
                " FROM outbound_messages o JOIN charges c ON c.outbound_id = o.id ORDER BY o.id"
            )
            == [(0, "api:vssid-app", 300, "mt", "final")] * 3
        )
        assert "482913" not in daemon.log_text()
        assert "327000686" not in daemon.log_text()
        assert token not in daemon.log_text()


async def test_a_repeated_client_ref_sends_one_sms(tmp_path: Path) -> None:
    port = free_port()
    async with open_daemon(tmp_path, extra=api_config(port)) as daemon:
        token = await trio.to_thread.run_sync(
            partial(add_client, daemon, "portal", "--scopes", "messages", "--rate", "1000")
        )
        body = {"to": "0327000686", "text": "Ma OTP 111222", "client_ref": "same"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            answers: list[httpx.Response] = []

            async def one() -> None:
                answers.append(await post(http, token, body))

            async with trio.open_nursery() as nursery:
                for _ in range(5):  # at once: they race for the same client_ref
                    nursery.start_soon(one)
            answers.append(await post(http, token, body))
            ids = {a.json()["id"] for a in answers}
            assert len(ids) == 1
            assert sorted(a.status_code for a in answers) == [200] * 5 + [202]
            await wait_state(http, token, ids.pop(), "delivered")
        await trio.sleep(1.0)  # a second SMS would have been claimed by now
        assert [sm.event.destination_addr for sm in daemon.sim.submitted] == ["84327000686"]
        assert outbox_rows(daemon) == 1
        (charges,) = daemon.query("SELECT COUNT(*) FROM charges")
        assert charges == (1,)


async def test_every_bad_request_gets_its_status_and_queues_nothing(tmp_path: Path) -> None:
    port = free_port()
    async with open_daemon(tmp_path, extra=api_config(port)) as daemon:
        tokens = {}
        for name, args in (
            ("app", ("--scopes", "messages", "--rate", "3")),
            ("hotline", ("--scopes", "resets")),
            ("gone", ("--scopes", "messages")),
        ):
            tokens[name] = await trio.to_thread.run_sync(partial(add_client, daemon, name, *args))
        done = await trio.to_thread.run_sync(
            partial(
                subprocess.run,
                [*SMSCD, "-c", str(daemon.config), "clients", "revoke", "gone"],
                capture_output=True,
                check=True,
                text=True,
            )
        )
        assert done.stdout == "client 'gone' revoked\n"
        good: dict[str, Any] = {"to": "0327000686", "text": "hi", "client_ref": "r1"}
        app = tokens["app"]
        cases: list[tuple[str, object, dict[str, str], int, str]] = [
            (app, b"{not json", {}, 400, "invalid_json"),
            (app, good, {"content-type": "text/plain"}, 415, "unsupported_media_type"),
            (app, {**good, "text": "x" * 1500}, {}, 400, "invalid_field"),
            (app, {**good, "pad": "x" * 3000}, {}, 413, "too_large"),
            (app, {"to": "0327000686", "client_ref": "r1"}, {}, 400, "invalid_field"),
            (app, {"text": "hi", "client_ref": "r1"}, {}, 400, "missing_field"),
            (app, {**good, "to": "02838123456"}, {}, 400, "invalid_field"),
            ("no-such-token", good, {}, 401, "unauthorized"),
            (tokens["gone"], good, {}, 401, "unauthorized"),
            (tokens["hotline"], good, {}, 403, "forbidden"),
        ]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for token, body, headers, status, error in cases:
                await trio.sleep(0.4)  # within the app's 3 requests a second
                response = await post(http, token, body, **headers)
                assert (response.status_code, response.json()["error"]) == (status, error), body
            # The rate limit: a burst of 3, then 429 with Retry-After.
            await trio.sleep(1.1)
            burst = [
                await post(http, app, {**good, "to": "0327", "client_ref": f"b{n}"})
                for n in range(4)
            ]
            assert [b.status_code for b in burst] == [400, 400, 400, 429]
            assert burst[3].headers["retry-after"] == "1"
        # Each request counted once, by route and status, for Prometheus.
        status, metrics = await http_get(daemon.metrics_port, "/metrics")
        assert status == 200
        counted = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in metrics.decode().splitlines()
            if line.startswith("smscd_api_requests_total{")
        }
        assert counted == {
            f'smscd_api_requests_total{{route="messages",status="{code}"}}': float(n)
            for code, n in (("400", 8), ("415", 1), ("413", 1), ("401", 2), ("403", 1), ("429", 1))
        }
        assert outbox_rows(daemon) == 0
        assert daemon.query("SELECT COUNT(*) FROM charges") == [(0,)]
        assert daemon.sim.submitted == []


async def front_pid(daemon: DaemonProcess) -> int:
    """The pid of the daemon's API front, from its log line."""
    await daemon.wait_log('"api_front_started"')
    (pid,) = [
        json.loads(line)["pid"]
        for line in daemon.log_text().splitlines()
        if '"api_front_started"' in line
    ]
    return int(pid)


async def test_kill_9_after_a_202_still_sends_that_sms_once(tmp_path: Path) -> None:
    port = free_port()
    async with open_daemon(tmp_path, extra=api_config(port)) as daemon:
        token = await trio.to_thread.run_sync(
            partial(add_client, daemon, "app", "--scopes", "messages", "--sender", "VssID")
        )
        sim = daemon.sim
        sim.no_response_on_submit(True)  # nothing is accepted before the kill
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            answer = await post(
                http, token, {"to": "0327000686", "text": "Ma OTP 909090", "client_ref": "k"}
            )
        assert answer.status_code == 202
        front = await front_pid(daemon)
        daemon.signal(signal.SIGKILL)
        await daemon.wait_exit()
        # The front ends with the daemon that started it (its socketpair closed).
        with trio.fail_after(5):
            while alive(front):
                await trio.sleep(0.05)
        assert daemon.query("SELECT state, client_ref FROM outbound_messages") == [("queued", "k")]
        sim.no_response_on_submit(False)
        await sim.drop_connections()
        async with trio.open_nursery() as nursery:
            again = await start_daemon(
                nursery, tmp_path, daemon.config, sim, daemon.metrics_port, log_name="daemon2.log"
            )
            with trio.fail_after(15):
                sm = await sim.wait_submitted_to("84327000686")
            assert (sm.event.source_addr, sm.event.short_message) == ("VssID", b"Ma OTP 909090")
            await trio.sleep(1.0)
            assert len(sim.submitted) == 1
            again.signal(signal.SIGTERM)
            assert await again.wait_exit() == 0


async def test_the_callback_url_gets_the_final_state_after_a_500(tmp_path: Path) -> None:
    from smscd.web import serve_web

    posted: list[tuple[int, dict[str, Any]]] = []

    async def receive(request: Request) -> Response:
        status = 500 if not posted else 204
        posted.append((status, json.loads(await request.body())))
        return Response(status_code=status)

    receiver = Starlette(routes=[Route("/cb", receive, methods=["POST"])])
    port = free_port()
    async with trio.open_nursery() as servers:
        cb_port = await servers.start(partial(serve_web, receiver, "127.0.0.1:0"))
        async with open_daemon(tmp_path, extra=api_config(port)) as daemon:
            token = await trio.to_thread.run_sync(
                partial(
                    add_client,
                    daemon,
                    "app",
                    "--scopes",
                    "messages",
                    "--callback-url",
                    f"http://127.0.0.1:{cb_port}/cb",
                )
            )
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                answer = await post(
                    http, token, {"to": "0327000686", "text": "hello", "client_ref": "cb-1"}
                )
            message_id = answer.json()["id"]
            with trio.fail_after(20):
                while len(posted) < 2:
                    await trio.sleep(0.05)
            final = {
                "id": message_id,
                "client_ref": "cb-1",
                "state": "delivered",
                "receipt_stat": "DELIVRD",
            }
            assert posted == [(500, final), (204, final)]
            await trio.sleep(3.0)  # done: never posted again
            assert len(posted) == 2
            assert daemon.query("SELECT attempts, outcome FROM api_callbacks") == [(2, "delivered")]
        servers.cancel_scope.cancel()


async def test_an_api_address_in_use_is_one_log_line_and_exit_2(tmp_path: Path) -> None:
    from smscd.simulator import open_simulator
    from tests.integration.daemon_harness import prepare_store, write_config

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with open_simulator() as sim:
            config = write_config(
                tmp_path, smsc_port=sim.port, metrics_port=free_port(), extra=api_config(port)
            )
            await trio.to_thread.run_sync(prepare_store, tmp_path, config)
            with trio.fail_after(30):
                done = await trio.run_process(
                    [*SMSCD, "-c", str(config), "run"], capture_stdout=True, check=False
                )
    assert done.returncode == 2
    failed = [
        json.loads(line)
        for line in done.stdout.decode().splitlines()
        if '"api_listen_failed"' in line
    ]
    assert len(failed) == 1
    assert failed[0]["listen"] == f"127.0.0.1:{port}"
    assert "Traceback" not in done.stdout.decode()


async def test_an_api_sms_is_claimed_when_committed_not_at_the_next_poll(tmp_path: Path) -> None:
    """The commit of a 202 wakes the carrier's claimer (``want_claim``): the
    SMS reaches the SMSC within a few tens of milliseconds, where the claimer's
    poll alone (every 0.5 s) would take 0.25 s in the median. Nine SMS, spaced
    more than a poll apart; without the wake-up the median would be under
    0.1 s about once in fifty runs."""
    port = free_port()
    async with open_daemon(tmp_path, extra=api_config(port)) as daemon:
        token = await trio.to_thread.run_sync(
            partial(add_client, daemon, "app", "--scopes", "messages", "--rate", "100")
        )
        delays: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for n in range(9):
                to = f"8432700{n:04d}"
                response = await post(
                    http, token, {"to": to, "text": f"Ma OTP {n:06d}", "client_ref": f"w{n}"}
                )
                answered = trio.current_time()
                assert response.status_code == 202
                with trio.fail_after(5):
                    sm = await daemon.sim.wait_submitted_to(to)
                delays.append(sm.received_at - answered)
                await trio.sleep(0.55)
        delays.sort()
        assert delays[4] < 0.1, delays


async def test_healthz_says_while_the_api_front_is_down(tmp_path: Path) -> None:
    port = free_port()
    async with open_daemon(tmp_path, extra=api_config(port)) as daemon:
        assert await http_get(daemon.metrics_port, "/healthz") == (200, b"ok\n")
        front = await front_pid(daemon)
        os.kill(front, signal.SIGKILL)
        # Restarted after a second; meanwhile the probe says why it fails.
        with trio.fail_after(5):
            while (answer := await http_get(daemon.metrics_port, "/healthz"))[0] != 503:
                await trio.sleep(0.05)
        assert answer[1] == b"api front process not running\n"
        with trio.fail_after(10):
            while await http_get(daemon.metrics_port, "/healthz") != (200, b"ok\n"):
                await trio.sleep(0.1)
