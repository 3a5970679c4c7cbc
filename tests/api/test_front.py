"""The API's front process and its wire to the daemon (``smscd.api._remote``,
``smscd.api.front``, ``smscd.service.api.run_front``).

Over a real socketpair: every call of the backend Protocol arrives in the
daemon as the same values and its answer comes back equal (times, sets, a
password), failures map to ApiUnavailable or RemoteFailure, and a daemon that
goes away fails the calls in hand. Through a real front process started by
``run_front`` with a fake backend: an HTTP request reaches the backend and is
counted, a killed front is started again on the same port, and a stopped
daemon leaves no front behind."""

from __future__ import annotations

import json
import os
import signal
import socket
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import pytest
import trio
from structlog.testing import capture_logs

from smscd.api import ApiUnavailable, MessageAccepted, MessageRequest, MessageStatus, ResetCall
from smscd.api._remote import (
    FrameStream,
    RemoteBackend,
    RemoteFailure,
    decode_value,
    encode_value,
    serve_backend,
)
from smscd.config import ApiConfig, LogConfig
from smscd.service.api import FrontWatch, run_front
from tests.api.test_messages_app import APP, APP_TOKEN, HOTLINE, HOTLINE_TOKEN, T0, FakeBackend
from tests.integration.daemon_harness import alive

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping


def _frames(sock: socket.socket) -> FrameStream:
    return FrameStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))


@attrs.define
class Wire:
    remote: RemoteBackend
    backend: FakeBackend
    seen: list[tuple[str, int]]
    daemon_side: socket.socket
    recorded: list[tuple[dict[str, Any], str]]


def seen_by(seen: list[tuple[str, int]]) -> Callable[[str, int], None]:
    def observe(route: str, status: int) -> None:
        seen.append((route, status))

    return observe


def recorder(
    recorded: list[tuple[dict[str, Any], str]],
) -> Callable[[Mapping[str, Any], str], None]:
    def record(event: Mapping[str, Any], level: str) -> None:
        recorded.append((dict(event), level))

    return record


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    front, daemon = socket.socketpair()
    backend = FakeBackend()
    seen: list[tuple[str, int]] = []
    recorded: list[tuple[dict[str, Any], str]] = []
    remote = RemoteBackend(_frames(front))
    with front, daemon:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(remote.run)
            nursery.start_soon(
                serve_backend, _frames(daemon), backend, seen_by(seen), recorder(recorded)
            )
            with trio.fail_after(5):
                yield Wire(remote, backend, seen, daemon, recorded)
            nursery.cancel_scope.cancel()


def test_every_value_survives_its_json_form() -> None:
    status = MessageStatus(
        id=9,
        client_ref="r",
        msisdn="84327000686",
        state="delivered",
        carrier="viettel",
        created_at=T0,
        accepted_at=T0 + timedelta(seconds=1),
        final_at=None,
        receipt_stat="DELIVRD",
    )
    for value in (
        APP,
        HOTLINE,
        status,
        MessageRequest(msisdn="84327000686", text="Mật khẩu", client_ref="x"),
    ):
        encoded = json.loads(json.dumps(encode_value(value)))
        assert decode_value(type(value), encoded) == value


async def test_each_call_reaches_the_daemon_and_its_answer_comes_back(wire: Wire) -> None:
    assert await wire.remote.authenticate(APP_TOKEN) == APP
    assert await wire.remote.authenticate(HOTLINE_TOKEN) == HOTLINE
    assert await wire.remote.authenticate("nobody") is None
    request = MessageRequest(msisdn="84327000686", text="Mã OTP 482913", client_ref="otp-1")
    first = await wire.remote.send_message(APP, request)
    assert first == MessageAccepted(id=100, client_ref="otp-1", created=True)
    assert wire.backend.messages == {100: (APP, request)}
    assert await wire.remote.send_message(APP, request) == attrs.evolve(first, created=False)
    status = await wire.remote.message_status(APP, 100)
    assert status is not None
    assert (status.state, status.created_at, status.final_at) == ("delivered", T0, T0)
    assert await wire.remote.message_status(HOTLINE, 100) is None
    call = ResetCall(msisdn="84903000001", bhxh_code="5500000001", channel="hotline")
    answer = await wire.remote.reset(HOTLINE, call)
    assert (answer.id, answer.outcome, answer.password) == (7, "mismatch", None)
    assert wire.backend.resets == [call]
    wire.remote.observe("messages", 202)
    with trio.fail_after(2):
        while not wire.seen:
            await trio.sleep(0.01)
    assert wire.seen == [("messages", 202)]


async def test_the_fronts_warnings_reach_the_daemon_masked_and_plain(wire: Wire) -> None:
    forward = wire.remote.forward_warnings
    forward(None, "info", {"event": "api_request", "level": "info"})
    warning = {"event": "http_server_failed", "level": "warning", "msisdn": "0327xxx686"}
    assert forward(None, "warning", {**warning, "exc": object()})["event"] == "http_server_failed"
    with trio.fail_after(2):
        while not wire.recorded:
            await trio.sleep(0.01)
    await trio.sleep(0.05)
    # The info line stays in the front; a value that is not plain is left out.
    assert wire.recorded == [(warning, "warning")]


async def test_concurrent_calls_each_get_their_own_answer(wire: Wire) -> None:
    answers: dict[str, MessageAccepted] = {}

    async def send(ref: str) -> None:
        request = MessageRequest(msisdn="84327000686", text=ref, client_ref=ref)
        answers[ref] = await wire.remote.send_message(APP, request)

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(send, f"r{n}")
    assert {ref: answer.client_ref for ref, answer in answers.items()} == {
        f"r{n}": f"r{n}" for n in range(50)
    }
    assert len({answer.id for answer in answers.values()}) == 50


async def test_a_store_down_is_unavailable_and_a_bug_is_a_remote_failure(wire: Wire) -> None:
    wire.backend.down = True
    with pytest.raises(ApiUnavailable):
        await wire.remote.authenticate("another-token")
    wire.backend.broken = True
    request = MessageRequest(msisdn="84327000686", text="hi", client_ref="b")
    with capture_logs() as logs, pytest.raises(RemoteFailure):
        await wire.remote.send_message(APP, request)
    # The daemon logs the bug's type, never its message (it may carry a number).
    assert [(e["event"], e["op"], e["error"]) for e in logs] == [
        ("api_call_failed", "send", "RuntimeError")
    ]


async def test_a_client_is_remembered_for_a_second(wire: Wire) -> None:
    assert await wire.remote.authenticate(APP_TOKEN) == APP
    wire.backend.down = True  # a second look-up would fail
    assert await wire.remote.authenticate(APP_TOKEN) == APP
    await trio.sleep(1.05)
    with pytest.raises(ApiUnavailable):
        await wire.remote.authenticate(APP_TOKEN)


async def test_a_daemon_that_goes_away_fails_the_calls_in_hand() -> None:
    front, daemon = socket.socketpair()
    remote = RemoteBackend(_frames(front))
    failures: list[type[BaseException]] = []

    async def call() -> None:
        try:
            await remote.authenticate(APP_TOKEN)
        except ApiUnavailable as exc:
            failures.append(type(exc))

    with front, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(remote.run)
            nursery.start_soon(call)
            await trio.sleep(0.1)  # the call is in hand: written, unanswered
            daemon.close()
        assert failures == [ApiUnavailable]
        with pytest.raises(ApiUnavailable):
            await remote.authenticate(APP_TOKEN)


async def test_a_frame_of_another_protocol_ends_the_daemons_side() -> None:
    front, daemon = socket.socketpair()
    with front, daemon, capture_logs() as logs, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_backend, _frames(daemon), FakeBackend(), lambda *_: None)
            front.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert [e["event"] for e in logs] == ["api_front_protocol_error"]


# -- the front process --------------------------------------------------------


def _config(**changes: Any) -> ApiConfig:
    settings: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "default_route": "sim",
        "templates": (("otp", "Ma OTP {otp}"),),
    }
    return ApiConfig(**(settings | changes))


async def _post_otp(port: int, ref: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        return await http.post(
            "/v1/messages",
            json={"to": "0327000686", "template": "otp", "params": {"otp": "1"}, "client_ref": ref},
            headers={"authorization": f"Bearer {APP_TOKEN}"},
        )


async def test_the_front_serves_restarts_and_ends_with_the_daemon() -> None:
    backend = FakeBackend()
    seen: list[tuple[str, int]] = []
    watch = FrontWatch()
    recorded: list[tuple[dict[str, Any], str]] = []
    with capture_logs() as logs, trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                partial(run_front, record=recorder(recorded), watch=watch),
                backend,
                _config(),
                LogConfig(format="json"),
                seen_by(seen),
            )
            answer = await _post_otp(port, "one")
            assert (answer.status_code, answer.json()["id"]) == (202, 100)
            assert backend.messages[100][1].text == "Ma OTP 1"
            assert seen == [("messages", 202)]
            backend.broken = True
            failed = await _post_otp(port, "bug")
            assert failed.status_code == 500
            backend.broken = False
            while not recorded:  # the front's error line, forwarded
                await trio.sleep(0.01)
            assert [(e["event"], e["route"], level) for e, level in recorded] == [
                ("api_request_failed", "messages", "error")
            ]
            (first,) = [e["pid"] for e in logs if e["event"] == "api_front_started"]
            assert watch.pid == first
            os.kill(first, signal.SIGKILL)
            while watch.pid is not None:  # seen at once, started again a second later
                await trio.sleep(0.01)
            # The socket stays open in the daemon: this request waits in its
            # queue for the next front instead of being refused.
            again = await _post_otp(port, "two")
            assert (again.status_code, again.json()["id"]) == (202, 101)
            exited = [e for e in logs if e["event"] == "api_front_exited"]
            assert [(e["pid"], e["returncode"]) for e in exited] == [(first, -signal.SIGKILL)]
            second = [e["pid"] for e in logs if e["event"] == "api_front_started"][-1]
            assert second != first
            assert watch.pid == second
            nursery.cancel_scope.cancel()
        assert not alive(second)


async def test_a_port_taken_fails_before_started() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = _config(listen=f"127.0.0.1:{taken.getsockname()[1]}")
        with trio.fail_after(5), pytest.raises(ExceptionGroup) as info:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_front, FakeBackend(), config, LogConfig(), lambda *_: None)
    # The daemon turns this OSError into api_listen_failed and exit 2.
    assert info.group_contains(OSError)
