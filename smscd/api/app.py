"""The internal HTTP API as a Starlette app: authentication, scopes, rate
limits, body limits, and ``POST /v1/messages`` / ``GET /v1/messages/{id}``
(``POST /v1/resets`` is ``_resets``).

Theory of operation
-------------------
Every request passes the same gate (``_Gate.admit``), in this order, and the
first check that fails answers, so nothing is queued for it:

1. ``Authorization: Bearer TOKEN`` names an active client, else **401**
   (``unauthorized``; a revoked token is unknown);
2. the route's scope (``messages``, ``resets``) is the client's, else **403**;
3. the client's rate (a token bucket of ``rate_per_s`` per second, one
   second's burst) allows it, else **429** with ``Retry-After`` (seconds);
4. a POST says ``Content-Type: application/json``, else **415**;
5. the body is at most ``max_body`` bytes, else **413**: a declared
   ``Content-Length`` over it is refused before reading, and reading stops at
   the first chunk past it;
6. the body is a JSON object of the route's schema (pydantic), else **400**
   naming the field.

A backend failure (the store down) is **503**. Every error is
``{"error": CODE, "detail": TEXT}``. A new message is answered **202**
``{"id", "client_ref", "state": "queued"}`` once committed; the same
``client_ref`` again gets the first message's id with **200** and queues
nothing. One log line per request (``api_request``: client, route, status,
duration, the masked number and the id of a message): never a body, a
token or a password.
"""

from __future__ import annotations

import math
import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Final

import attrs
import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smscd.api._backend import ApiClient, ApiUnavailable, MessageRequest
from smscd.api._resets import post_reset
from smscd.api._schemas import MessageBody, TextProblem, field_error, fill_template, fit_text
from smscd.numbers import mask_msisdn

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from datetime import datetime

    from starlette.responses import Response
    from starlette.types import Message

    from smscd.api._backend import ApiBackend

__all__ = ["RateLimiter", "create_api_app"]

log = structlog.get_logger("smscd.api")

_NO_STORE: Final = {"cache-control": "no-store"}
_JSON: Final = "application/json"


def _error(status: int, error: str, detail: str, **headers: str) -> Response:
    return JSONResponse(
        {"error": error, "detail": detail}, status_code=status, headers={**_NO_STORE, **headers}
    )


@attrs.define
class _Bucket:
    tokens: float
    at: float


@attrs.define
class RateLimiter:
    """A token bucket per client: ``rate_per_s`` tokens a second, holding at
    most one second's worth (at least one)."""

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[int, _Bucket] = attrs.field(factory=dict, init=False)

    def wait_s(self, client: ApiClient) -> float:
        """0 and a token taken if the client may go now; else the seconds
        until it may."""
        now = self.clock()
        rate = client.rate_per_s
        if rate <= 0:
            return 0.0
        capacity = max(1.0, rate)
        bucket = self._buckets.setdefault(client.id, _Bucket(tokens=capacity, at=now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@attrs.frozen(kw_only=True)
class _Gate:
    backend: ApiBackend
    max_body: int
    limiter: RateLimiter

    async def admit(self, request: Request, scope: str) -> ApiClient:
        """Steps 1-3 of the module docstring; raises _Refused."""
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise _Refused(_error(401, "unauthorized", "a bearer token is required", **_CHALLENGE))
        try:
            client = await self.backend.authenticate(token.strip())
        except ApiUnavailable as exc:
            raise _Refused(_unavailable()) from exc
        if client is None:
            raise _Refused(_error(401, "unauthorized", "unknown or revoked token", **_CHALLENGE))
        request.state.client = client
        if scope not in client.scopes:
            raise _Refused(_error(403, "forbidden", f"this client has no {scope!r} scope"))
        wait = self.limiter.wait_s(client)
        if wait > 0:
            raise _Refused(
                _error(
                    429,
                    "rate_limited",
                    f"at most {client.rate_per_s:g} requests per second",
                    **{"retry-after": str(max(1, math.ceil(wait)))},
                )
            )
        return client

    async def body(self, request: Request) -> bytes:
        """Steps 4-5: the body, read up to ``max_body``; raises _Refused."""
        content_type = request.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != _JSON:
            raise _Refused(_error(415, "unsupported_media_type", f"send {_JSON}"))
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            raise _Refused(self._too_large())
        chunks: list[bytes] = []
        size = 0
        async with aclosing(request.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > self.max_body:
                    raise _Refused(self._too_large())
                chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> Response:
        return _error(413, "too_large", f"the body is over {self.max_body} bytes")


_CHALLENGE: Final = {"www-authenticate": 'Bearer realm="smscd"'}


def _unavailable() -> Response:
    return _error(503, "unavailable", "the service cannot answer now; nothing was queued")


def _replay(body: bytes) -> Callable[[], Awaitable[Message]]:
    """A receive channel that gives ``body`` once, for a handler that reads it again."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def create_api_app(
    backend: ApiBackend,
    *,
    templates: Mapping[str, str] | None = None,
    max_body: int = 16384,
    limiter: RateLimiter | None = None,
    observe: Callable[[str, int], None] | None = None,
) -> Starlette:
    """The API (see the module docstring) over ``backend``; ``observe(route,
    status)`` is called once per request (the daemon counts them)."""
    gate = _Gate(backend=backend, max_body=max_body, limiter=limiter or RateLimiter())
    named = dict(templates or {})

    def logged(
        route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            response: Response | None = None
            try:
                response = await handler(request)
            except _Refused as refused:
                response = refused.response
            except Exception as exc:
                # A bug, not the client's: its type only (a message may
                # carry the data), and nothing was queued.
                log.error("api_request_failed", route=route, error=type(exc).__name__)
                response = _error(
                    500, "internal_error", "the request failed; it may be sent again as it is"
                )
            finally:
                client = getattr(request.state, "client", None)
                msisdn = getattr(request.state, "msisdn", None)
                message_id = getattr(request.state, "message_id", None)
                status = response.status_code if response is not None else 500
                if observe is not None:
                    observe(route, status)
                log.info(
                    "api_request",
                    client=client.name if client is not None else None,
                    route=route,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    **({"msisdn": mask_msisdn(msisdn)} if msisdn else {}),
                    **({"outbound_id": message_id} if message_id is not None else {}),
                )
            return response

        return endpoint

    async def post_message(request: Request) -> Response:
        client = await gate.admit(request, "messages")
        raw = await gate.body(request)
        try:
            body = MessageBody.model_validate_json(raw)
        except ValidationError as exc:
            return _error(400, *field_error(exc.errors(include_input=False)[0]))
        request.state.msisdn = body.to
        try:
            text = _render(body, named)
            fit_text(text)
        except TextProblem as problem:
            return _error(400, problem.error, problem.detail)
        message = MessageRequest(msisdn=body.to, text=text, client_ref=body.client_ref)
        try:
            accepted = await backend.send_message(client, message)
        except ApiUnavailable:
            return _unavailable()
        request.state.message_id = accepted.id
        return JSONResponse(
            {"id": accepted.id, "client_ref": accepted.client_ref, "state": "queued"},
            status_code=202 if accepted.created else 200,
            headers=_NO_STORE,
        )

    async def get_message(request: Request) -> Response:
        client = await gate.admit(request, "messages")
        raw_id = request.path_params["message_id"]
        if not raw_id.isdigit() or len(raw_id) > 18:
            return _error(404, "not_found", "no such message")
        try:
            status = await backend.message_status(client, int(raw_id))
        except ApiUnavailable:
            return _unavailable()
        if status is None:
            return _error(404, "not_found", "no such message")
        return JSONResponse(
            {
                "id": status.id,
                "client_ref": status.client_ref,
                "to": status.msisdn,
                "state": status.state,
                "carrier": status.carrier,
                "created_at": status.created_at.isoformat(),
                "accepted_at": _iso(status.accepted_at),
                "final_at": _iso(status.final_at),
                "receipt_stat": status.receipt_stat,
            },
            headers=_NO_STORE,
        )

    async def reset(request: Request) -> Response:
        await gate.admit(request, "resets")
        raw = await gate.body(request)
        return await post_reset(Request(request.scope, _replay(raw)))

    app = Starlette(
        routes=[
            Route("/v1/messages", logged("messages", post_message), methods=["POST"]),
            Route(
                "/v1/messages/{message_id}",
                logged("message_status", get_message),
                methods=["GET"],
            ),
            Route("/v1/resets", logged("resets", reset), methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.backend = backend
    return app


def _render(body: MessageBody, templates: Mapping[str, str]) -> str:
    if body.text is not None:
        return body.text
    assert body.template is not None
    template = templates.get(body.template)
    if template is None:
        raise TextProblem("unknown_template", f"template: no template {body.template!r}")
    return fill_template(template, body.params or {})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405, shaped like every other error."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), **(exc.headers or {}))
