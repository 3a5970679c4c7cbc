"""The API app over a real socket with a fake backend: authentication,
scopes, rate limits, body limits and schema errors of ``POST /v1/messages``
and ``GET /v1/messages/{id}``, each with its exact status and JSON, and that
nothing reaches the backend (so nothing is queued) for a refused request, and
no token, body or full number reaches the logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import pytest
import trio
from structlog.testing import capture_logs

from smscd.api import (
    ApiClient,
    ApiUnavailable,
    MessageAccepted,
    MessageRequest,
    MessageStatus,
    ResetAnswer,
    ResetCall,
)
from smscd.api.app import RateLimiter, create_api_app
from smscd.web import serve_web

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

APP_TOKEN = "app-token-0123456789abcdef0123456789abcdef"
HOTLINE_TOKEN = "hotline-token-0123456789abcdef0123456789"
APP = ApiClient(
    id=1,
    name="vssid-app",
    scopes=frozenset({"messages"}),
    sender="VssID",
    sender_ton=5,
    rate_per_s=2.0,
)
HOTLINE = ApiClient(id=2, name="hotline", scopes=frozenset({"resets"}), rate_per_s=100.0)
TEMPLATES = {"otp": "Ma OTP VssID cua ban la {otp}", "password": "Mat khau moi: {password}"}
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@attrs.define
class FakeBackend:
    """Clients by token; messages kept in a dict, idempotent on client_ref."""

    messages: dict[int, tuple[ApiClient, MessageRequest]] = attrs.Factory(dict)
    resets: list[ResetCall] = attrs.Factory(list)
    down: bool = False
    #: send_message raises a bug of its own.
    broken: bool = False

    async def authenticate(self, token: str) -> ApiClient | None:
        if self.down:
            raise ApiUnavailable("store down")
        return {APP_TOKEN: APP, HOTLINE_TOKEN: HOTLINE}.get(token)

    async def send_message(self, client: ApiClient, request: MessageRequest) -> MessageAccepted:
        if self.broken:
            raise RuntimeError("secret detail 84327000686")
        for message_id, (owner, queued) in self.messages.items():
            if owner == client and queued.client_ref == request.client_ref:
                return MessageAccepted(id=message_id, client_ref=request.client_ref, created=False)
        message_id = 100 + len(self.messages)
        self.messages[message_id] = (client, request)
        return MessageAccepted(id=message_id, client_ref=request.client_ref, created=True)

    async def message_status(self, client: ApiClient, message_id: int) -> MessageStatus | None:
        found = self.messages.get(message_id)
        if found is None or found[0] != client:
            return None
        return MessageStatus(
            id=message_id,
            client_ref=found[1].client_ref,
            msisdn=found[1].msisdn,
            state="delivered",
            carrier="viettel",
            created_at=T0,
            accepted_at=T0,
            final_at=T0,
            receipt_stat="DELIVRD",
        )

    async def reset(self, client: ApiClient, call: ResetCall) -> ResetAnswer:
        self.resets.append(call)
        return ResetAnswer(id=7, outcome="mismatch")


@attrs.define
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@attrs.frozen
class Served:
    http: httpx.AsyncClient
    backend: FakeBackend
    clock: FakeClock


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    backend = FakeBackend()
    clock = FakeClock()
    app = create_api_app(
        backend, templates=TEMPLATES, max_body=1024, limiter=RateLimiter(clock=clock)
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_web, app, "127.0.0.1:0"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            yield Served(http, backend, clock)
        nursery.cancel_scope.cancel()


async def _post(
    served: Served,
    body: object,
    *,
    token: str | None = APP_TOKEN,
    path: str = "/v1/messages",
    content_type: str = "application/json",
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": content_type}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    served.clock.now += 1.0  # a fresh token in the bucket: no test is rate limited by accident
    with trio.fail_after(5):
        return await served.http.post(path, content=content, headers=headers)


OTP: dict[str, Any] = {
    "to": "0327000686",
    "template": "otp",
    "params": {"otp": "482913"},
    "client_ref": "otp-1",
}


async def test_an_otp_is_queued_once_per_client_ref(served: Served) -> None:
    first = await _post(served, OTP)
    assert first.status_code == 202
    assert first.json() == {"id": 100, "client_ref": "otp-1", "state": "queued"}
    assert first.headers["cache-control"] == "no-store"
    assert served.backend.messages == {
        100: (
            APP,
            MessageRequest(
                msisdn="84327000686", text="Ma OTP VssID cua ban la 482913", client_ref="otp-1"
            ),
        )
    }
    again = await _post(served, OTP)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert len(served.backend.messages) == 1


@pytest.mark.parametrize(
    ("to", "canonical"),
    [
        ("+84 327 000 686", "84327000686"),
        ("84327000686", "84327000686"),
        ("01627111222", "84327111222"),
    ],
)
async def test_a_text_to_any_mobile_form(served: Served, to: str, canonical: str) -> None:
    response = await _post(served, {"to": to, "text": "Xin chao", "client_ref": "ref-1"})
    assert response.status_code == 202
    (queued,) = (request for _client, request in served.backend.messages.values())
    assert (queued.msisdn, queued.text) == (canonical, "Xin chao")


async def test_vietnamese_text_of_70_characters_goes_and_71_is_refused(served: Served) -> None:
    ok = await _post(
        served, {"to": "0327000686", "text": "Mật khẩu " + "ư" * 61, "client_ref": "a"}
    )
    assert ok.status_code == 202
    long = await _post(
        served, {"to": "0327000686", "text": "Mật khẩu " + "ư" * 62, "client_ref": "b"}
    )
    assert long.status_code == 400
    assert long.json()["error"] == "text_too_long"
    gsm = await _post(served, {"to": "0327000686", "text": "x" * 161, "client_ref": "c"})
    assert gsm.status_code == 400
    assert gsm.json() == {
        "error": "text_too_long",
        "detail": "text: more than 160 GSM-7 characters",
    }
    assert list(served.backend.messages) == [100]


BAD_BODIES: list[tuple[object, int, dict[str, str]]] = [
    (b"{not json", 400, {"error": "invalid_json", "detail": "the body is not valid JSON"}),
    (b"[1, 2]", 400, {"error": "invalid_json", "detail": "the body must be a JSON object"}),
    ({"text": "hi", "client_ref": "r"}, 400, {"error": "missing_field", "detail": "to: required"}),
    (
        {"to": "0327000686", "text": "hi"},
        400,
        {"error": "missing_field", "detail": "client_ref: required"},
    ),
    (
        {**OTP, "text": "hi"},
        400,
        {
            "error": "invalid_field",
            "detail": "give either text or template (with params), not both",
        },
    ),
    (
        {**OTP, "bcc": "x"},
        400,
        {"error": "unknown_field", "detail": "bcc: not a field of this request"},
    ),
    (
        {**OTP, "to": "02838123456"},
        400,
        {"error": "invalid_field", "detail": "to: not a Vietnamese mobile number"},
    ),
    ({**OTP, "to": 327000686}, 400, {"error": "invalid_field", "detail": "to: must be a string"}),
    (
        {**OTP, "template": "nope"},
        400,
        {"error": "unknown_template", "detail": "template: no template 'nope'"},
    ),
    (
        {**OTP, "params": {}},
        400,
        {"error": "missing_field", "detail": "params.otp: required by the template"},
    ),
    (
        {**OTP, "params": {"otp": "1", "x": "2"}},
        400,
        {"error": "unknown_field", "detail": "params.x: not a parameter of the template"},
    ),
    (
        {**OTP, "client_ref": "has space"},
        400,
        {"error": "invalid_field", "detail": "client_ref: printable ASCII without spaces"},
    ),
]


@pytest.mark.parametrize(("body", "status", "answer"), BAD_BODIES)
async def test_a_bad_body_is_refused_naming_the_field(
    served: Served, body: object, status: int, answer: dict[str, str]
) -> None:
    response = await _post(served, body)
    assert (response.status_code, response.json()) == (status, answer)
    assert served.backend.messages == {}


async def test_wrong_content_type_is_415(served: Served) -> None:
    response = await _post(served, OTP, content_type="text/plain")
    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "detail": "send application/json",
    }
    assert served.backend.messages == {}


async def test_a_body_over_max_body_is_413_declared_or_streamed(served: Served) -> None:
    big = {**OTP, "text": None, "params": {"otp": "1"}, "pad": "x" * 2000}
    declared = await _post(served, big)
    assert declared.status_code == 413
    assert declared.json() == {"error": "too_large", "detail": "the body is over 1024 bytes"}

    # Chunked, so no size is declared: the app must stop reading on its own.
    served.clock.now += 1.0
    url = served.http.base_url
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", url.port or 80)
        async with stream:
            await stream.send_all(
                b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                b"content-type: application/json\r\n"
                + f"authorization: Bearer {APP_TOKEN}\r\n".encode()
                + b"transfer-encoding: chunked\r\n\r\n"
            )
            for _ in range(11):  # 1,100 bytes of JSON whitespace: over 1,024
                await stream.send_all(b"64\r\n" + b" " * 100 + b"\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert served.backend.messages == {}


@pytest.mark.parametrize(
    ("token", "status", "error"),
    [
        (None, 401, "unauthorized"),
        ("not-a-client", 401, "unauthorized"),
        (HOTLINE_TOKEN, 403, "forbidden"),
    ],
)
async def test_unknown_client_or_scope(
    served: Served, token: str | None, status: int, error: str
) -> None:
    response = await _post(served, OTP, token=token)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert served.backend.messages == {}


async def test_the_rate_limit_answers_429_with_retry_after(served: Served) -> None:
    """2 per second, a burst of 2: the third request in the same instant waits."""
    headers = {"content-type": "application/json", "authorization": f"Bearer {APP_TOKEN}"}
    served.clock.now += 10
    answers = []
    for n in range(3):
        body = json.dumps({**OTP, "client_ref": f"r{n}"}).encode()
        with trio.fail_after(5):
            answers.append(await served.http.post("/v1/messages", content=body, headers=headers))
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].json() == {
        "error": "rate_limited",
        "detail": "at most 2 requests per second",
    }
    assert len(served.backend.messages) == 2
    served.clock.now += 0.5  # one token back
    with trio.fail_after(5):
        later = await served.http.post(
            "/v1/messages", content=json.dumps({**OTP, "client_ref": "r9"}), headers=headers
        )
    assert later.status_code == 202


async def test_store_down_is_503(served: Served) -> None:
    served.backend.down = True
    response = await _post(served, OTP)
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


async def test_get_a_message_of_ones_own_and_not_of_another(served: Served) -> None:
    queued = (await _post(served, OTP)).json()["id"]

    async def get(path: str, token: str | None = APP_TOKEN) -> httpx.Response:
        served.clock.now += 1.0
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        with trio.fail_after(5):
            return await served.http.get(path, headers=headers)

    own = await get(f"/v1/messages/{queued}")
    other = await get(f"/v1/messages/{queued + 1}")
    junk = await get("/v1/messages/abc")
    anonymous = await get(f"/v1/messages/{queued}", token=None)
    assert own.status_code == 200
    assert own.json() == {
        "id": queued,
        "client_ref": "otp-1",
        "to": "84327000686",
        "state": "delivered",
        "carrier": "viettel",
        "created_at": "2026-12-02T03:00:00+00:00",
        "accepted_at": "2026-12-02T03:00:00+00:00",
        "final_at": "2026-12-02T03:00:00+00:00",
        "receipt_stat": "DELIVRD",
    }
    assert (other.status_code, other.json()["error"]) == (404, "not_found")
    assert (junk.status_code, junk.json()["error"]) == (404, "not_found")
    assert anonymous.status_code == 401


async def test_resets_need_the_resets_scope(served: Served) -> None:
    body = {"msisdn": "0327000686", "bhxh_code": "0123456789", "channel": "hotline"}
    refused = await _post(served, body, path="/v1/resets")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert served.backend.resets == []
    allowed = await _post(served, body, path="/v1/resets", token=HOTLINE_TOKEN)
    assert (allowed.status_code, allowed.json()) == (200, {"id": 7, "outcome": "mismatch"})
    assert served.backend.resets == [
        ResetCall(msisdn="84327000686", bhxh_code="0123456789", channel="hotline")
    ]


async def test_logs_carry_no_token_no_body_and_a_masked_number(served: Served) -> None:
    with capture_logs() as logs:
        await _post(served, {**OTP, "params": {"otp": "771234"}})
        await _post(served, OTP, token="wrong-token-abc")
    events = [e for e in logs if e["event"] == "api_request"]
    assert [(e["client"], e["route"], e["status"]) for e in events] == [
        ("vssid-app", "messages", 202),
        (None, "messages", 401),
    ]
    assert events[0]["msisdn"] == "0327xxx686"
    dumped = repr(logs)
    for secret in ("771234", APP_TOKEN, "wrong-token-abc", "327000686", "Ma OTP"):
        assert secret not in dumped


async def test_a_backend_bug_is_a_json_500_and_logged_by_type(served: Served) -> None:
    served.backend.broken = True
    with capture_logs() as logs:
        response = await _post(served, OTP)
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert [e["error"] for e in logs if e["event"] == "api_request_failed"] == ["RuntimeError"]
    assert "secret detail" not in repr(logs)
