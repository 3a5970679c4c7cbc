"""``POST /v1/resets``'s handler over a real socket, with a fake backend: the
exact status and JSON of every answer, the call the backend is given (the
number canonical, a malformed code passed on for the pipeline to judge), and
that no answer but reset_ok's carries a password, no error echoes a value, and
no log line carries the body or the password."""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from starlette.applications import Starlette
from starlette.routing import Route
from structlog.testing import capture_logs

from smscd.api import ApiClient, ResetAnswer, ResetCall
from smscd.api._resets import CHANNELS, MAX_CODE_CHARS, post_reset
from smscd.web import serve_web

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.responses import Response

    from smscd.api import MessageAccepted, MessageRequest, MessageStatus

CLIENT = ApiClient(id=3, name="hotline", scopes=frozenset({"resets"}))
PASSWORD = "402917"


class FakeBackend:
    """Answers resets from ``answers`` (or raises ``error``) and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[ApiClient, ResetCall]] = []
        self.answer = ResetAnswer(id=41, outcome="reset_ok", password=PASSWORD)
        self.error: Exception | None = None

    async def authenticate(self, token: str) -> ApiClient | None:
        raise AssertionError("the handler does not authenticate")

    async def send_message(self, client: ApiClient, request: MessageRequest) -> MessageAccepted:
        raise AssertionError("not a message")

    async def message_status(self, client: ApiClient, message_id: int) -> MessageStatus | None:
        raise AssertionError("not a message")

    async def reset(self, client: ApiClient, call: ResetCall) -> ResetAnswer:
        self.calls.append((client, call))
        if self.error is not None:
            raise self.error
        return self.answer


async def _as_client(request: Request) -> Response:
    """What the app does before the handler: the client authenticated."""
    request.state.client = CLIENT
    return await post_reset(request)


@pytest.fixture
async def served() -> AsyncIterator[tuple[httpx.AsyncClient, FakeBackend]]:
    backend = FakeBackend()
    app = Starlette(routes=[Route("/v1/resets", _as_client, methods=["POST"])])
    app.state.backend = backend
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_web, app, "127.0.0.1:0"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            yield http, backend
        nursery.cancel_scope.cancel()


async def _post(http: httpx.AsyncClient, body: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with trio.fail_after(5):
        return await http.post(
            "/v1/resets", content=content, headers={"content-type": "application/json"}
        )


GOOD: dict[str, Any] = {"msisdn": "0327000686", "bhxh_code": "0123456789", "channel": "hotline"}


async def test_reset_ok_answers_the_password_once_and_uncached(
    served: tuple[httpx.AsyncClient, FakeBackend],
) -> None:
    http, backend = served
    response = await _post(http, GOOD)
    assert response.status_code == 200
    assert response.json() == {"id": 41, "outcome": "reset_ok", "password": PASSWORD}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert backend.calls == [
        (CLIENT, ResetCall(msisdn="84327000686", bhxh_code="0123456789", channel="hotline"))
    ]


@pytest.mark.parametrize("outcome", ["mismatch", "invalid_code", "rate_limited", "bad_syntax"])
async def test_other_outcomes_carry_no_password(
    served: tuple[httpx.AsyncClient, FakeBackend], outcome: str
) -> None:
    http, backend = served
    # Even a backend that (wrongly) hands one back: only reset_ok shows it.
    backend.answer = ResetAnswer(id=42, outcome=outcome, password=PASSWORD)
    response = await _post(http, GOOD)
    assert response.status_code == 200
    assert response.content == json.dumps({"id": 42, "outcome": outcome}).encode().replace(
        b" ", b""
    )


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("0327000686", "84327000686"),
        ("84327000686", "84327000686"),
        ("+84 327-000.686", "84327000686"),
        ("01627111222", "84327111222"),  # the pre-2018 form
    ],
)
async def test_any_vietnamese_mobile_form_is_passed_on_canonical(
    served: tuple[httpx.AsyncClient, FakeBackend], given: str, canonical: str
) -> None:
    http, backend = served
    response = await _post(http, {**GOOD, "msisdn": given})
    assert response.status_code == 200
    assert backend.calls[-1][1].msisdn == canonical


@pytest.mark.parametrize("code", ["12345", "01234X6789", "", "x" * MAX_CODE_CHARS])
async def test_a_malformed_code_goes_to_the_pipeline(
    served: tuple[httpx.AsyncClient, FakeBackend], code: str
) -> None:
    """The pipeline answers it (invalid_code) and records it, as for an MO."""
    http, backend = served
    backend.answer = ResetAnswer(id=43, outcome="invalid_code")
    response = await _post(http, {**GOOD, "bhxh_code": code})
    assert (response.status_code, response.json()) == (200, {"id": 43, "outcome": "invalid_code"})
    assert backend.calls[-1][1].bhxh_code == code


@pytest.mark.parametrize("channel", CHANNELS)
async def test_each_channel_is_taken(
    served: tuple[httpx.AsyncClient, FakeBackend], channel: str
) -> None:
    http, backend = served
    assert (await _post(http, {**GOOD, "channel": channel})).status_code == 200
    assert backend.calls[-1][1].channel == channel


BAD_REQUESTS: list[tuple[str, object, dict[str, str]]] = [
    (
        "not JSON",
        b"msisdn=0327000686",
        {"error": "invalid_json", "detail": "the body is not valid JSON"},
    ),
    ("empty", b"", {"error": "invalid_json", "detail": "the body is not valid JSON"}),
    (
        "an array",
        [GOOD],
        {"error": "invalid_json", "detail": "the body must be a JSON object"},
    ),
    (
        "no msisdn",
        {"bhxh_code": "0123456789", "channel": "hotline"},
        {"error": "missing_field", "detail": "msisdn: required"},
    ),
    (
        "no code",
        {"msisdn": "0327000686", "channel": "hotline"},
        {"error": "missing_field", "detail": "bhxh_code: required"},
    ),
    (
        "no channel",
        {"msisdn": "0327000686", "bhxh_code": "0123456789"},
        {"error": "missing_field", "detail": "channel: required"},
    ),
    (
        "a numeric msisdn",
        {**GOOD, "msisdn": 327000686},
        {"error": "invalid_field", "detail": "msisdn: must be a string"},
    ),
    (
        "a numeric code",
        {**GOOD, "bhxh_code": 123456789},
        {"error": "invalid_field", "detail": "bhxh_code: must be a string"},
    ),
    (
        "a null code",
        {**GOOD, "bhxh_code": None},
        {"error": "invalid_field", "detail": "bhxh_code: must be a string"},
    ),
    (
        "a landline",
        {**GOOD, "msisdn": "0241234567"},
        {"error": "invalid_field", "detail": "msisdn: not a Vietnamese mobile number"},
    ),
    (
        "a foreign number",
        {**GOOD, "msisdn": "+33612345678"},
        {"error": "invalid_field", "detail": "msisdn: not a Vietnamese mobile number"},
    ),
    (
        "a long msisdn",
        {**GOOD, "msisdn": "0" * 33},
        {"error": "invalid_field", "detail": "msisdn: too long (at most 32)"},
    ),
    (
        "a long code",
        {**GOOD, "bhxh_code": "1" * (MAX_CODE_CHARS + 1)},
        {"error": "invalid_field", "detail": "bhxh_code: too long (at most 64)"},
    ),
    (
        "an unknown channel",
        {**GOOD, "channel": "sms"},
        {"error": "invalid_field", "detail": "channel: must be one of hotline, app, portal"},
    ),
    (
        "an unknown field",
        {**GOOD, "password": "123456"},
        {"error": "unknown_field", "detail": "password: not a field of this request"},
    ),
]


@pytest.mark.parametrize(
    ("body", "error"), [(b, e) for _n, b, e in BAD_REQUESTS], ids=[n for n, _b, _e in BAD_REQUESTS]
)
async def test_a_bad_request_is_400_naming_the_problem_and_asks_nothing(
    served: tuple[httpx.AsyncClient, FakeBackend], body: object, error: dict[str, str]
) -> None:
    http, backend = served
    with capture_logs() as logs:
        response = await _post(http, body)
    assert response.status_code == 400
    assert response.json() == error
    assert backend.calls == []
    # The error names the field, never its value.
    for value in ("0241234567", "33612345678", "123456789", "111111111"):
        assert value not in response.text
    assert logs == []


async def test_a_backend_failure_is_503_and_logs_neither_body_nor_password(
    served: tuple[httpx.AsyncClient, FakeBackend],
) -> None:
    http, backend = served
    backend.error = RuntimeError("database error: OperationalError: 0123456789 84327000686")
    with capture_logs() as logs:
        response = await _post(http, GOOD)
    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "detail": "the reset could not be decided now; nothing was changed",
    }
    assert logs == [
        {
            "event": "api_reset_unavailable",
            "client": "hotline",
            "error": "RuntimeError",
            "log_level": "warning",
        }
    ]


async def test_the_answer_and_logs_hold_the_password_only_where_due(
    served: tuple[httpx.AsyncClient, FakeBackend],
) -> None:
    http, _backend = served
    with capture_logs() as logs:
        response = await _post(http, GOOD)
    assert PASSWORD in response.text
    text = repr(logs)
    for secret in (PASSWORD, "0123456789", "0327000686", "84327000686"):
        assert secret not in text
