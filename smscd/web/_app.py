"""The daemon's HTTP listener: ``/metrics``, ``/healthz``, the status page and
its JSON, as a Starlette app served by hypercorn's trio worker on the daemon's
own event loop.

Theory of operation
-------------------
Everything here is read-only and cheap: ``/metrics`` renders the daemon's
Prometheus registry, ``/healthz`` asks the daemon for its problems, and
``/status.json`` asks it for a :class:`~smscd.web.StatusSnapshot`, cached for
``STATUS_MAX_AGE`` seconds so that any number of open pages costs one snapshot
a second at most (concurrent requests wait for the same one). The page itself
is three static files shipped in the package; it draws its charts as SVG with
its own script: no CDN, nothing from the internet.

Access: ``/metrics`` and ``/healthz`` are open (Prometheus and probes). The
page, its files and its JSON need the bearer token when one is configured
(``Authorization: Bearer TOKEN``, or HTTP Basic with the token as password so
that a browser can ask for it); without a token the listener is on loopback
(the config refuses anything else), and those routes then answer only requests
whose ``Host`` is a loopback name, so that a web page in an operator's
browser cannot read them through DNS rebinding. Every response carries a
Content-Security-Policy that allows only this origin's own files (no inline
script or style), ``nosniff`` and no-frame headers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Final, Protocol, cast

import structlog
import trio
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from smscd._http import hypercorn_config
from smscd._metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypercorn.typing import Framework
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from smscd.web._snapshot import StatusSnapshot

__all__ = ["StatusSource", "create_app", "serve_web"]

#: Seconds one snapshot serves every request for /status.json.
STATUS_MAX_AGE: Final = 1.0
#: How often the page fetches /status.json (the page reads it from its own
#: markup: ``data-refresh-ms``).
REFRESH_S: Final = 2.0

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Final = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
#: The page's files: name -> content type.
_STATIC: Final = {
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

log = structlog.get_logger("smscd.web")


class StatusSource(Protocol):
    """What the app asks the daemon."""

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of the daemon's registry."""
        ...

    async def health_problems(self) -> list[str]:
        """Why the daemon is not healthy, one line each (empty: healthy)."""
        ...

    async def status(self) -> StatusSnapshot:
        """A snapshot for the page."""
        ...


class _SnapshotCache:
    """One snapshot at a time, reused for ``max_age`` seconds."""

    def __init__(self, take: Callable[[], Awaitable[StatusSnapshot]], max_age: float) -> None:
        self._take = take
        self._max_age = max_age
        self._lock = trio.Lock()
        self._value: tuple[float, StatusSnapshot] | None = None

    async def get(self) -> StatusSnapshot:
        async with self._lock:
            now = trio.current_time()
            if self._value is None or now - self._value[0] >= self._max_age:
                self._value = (now, await self._take())
            return self._value[1]


class _SecurityHeaders:
    """Pure ASGI middleware: the security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``::1`` (brackets allowed)."""
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:9108`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _given_token(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def _static_file(name: str) -> bytes:
    return (resources.files("smscd.web") / "static" / name).read_bytes()


def create_app(source: StatusSource, *, token: str | None) -> Starlette:
    """The app; ``token`` guards the page and its JSON (see the module docstring)."""
    snapshots = _SnapshotCache(source.status, STATUS_MAX_AGE)
    index = _static_file("index.html").replace(
        b"{{refresh_ms}}", str(int(REFRESH_S * 1000)).encode()
    )
    files = {name: _static_file(name) for name in _STATIC}

    def refused(request: Request) -> Response | None:
        """The answer to a request for the page or its JSON that may not have
        it; None when it may."""
        if token is not None:
            given = _given_token(request.headers.get("authorization", ""))
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                return None
            response = PlainTextResponse("a bearer token is required\n", status_code=401)
            response.headers.append("www-authenticate", 'Bearer realm="smscd"')
            response.headers.append("www-authenticate", 'Basic realm="smscd", charset="UTF-8"')
            return response
        if is_loopback_host(_host_of(request.headers.get("host", ""))):
            return None
        return PlainTextResponse("this listener answers loopback names only\n", status_code=403)

    async def metrics(_request: Request) -> Response:
        return Response(source.metrics_text(), media_type=CONTENT_TYPE)

    async def healthz(_request: Request) -> Response:
        problems = await source.health_problems()
        if problems:
            return PlainTextResponse("\n".join(problems) + "\n", status_code=503)
        return PlainTextResponse("ok\n")

    async def page(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        return Response(
            index, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"}
        )

    async def static(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        name = request.path_params["name"]
        if name not in files:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(
            files[name], media_type=_STATIC[name], headers={"cache-control": "no-cache"}
        )

    async def favicon(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        return Response(files["icon.svg"], media_type=_STATIC["icon.svg"])

    async def status_json(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        snapshot = await snapshots.get()
        return JSONResponse(snapshot.to_json(), headers={"cache-control": "no-store"})

    app = Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/", page, methods=["GET"]),
            Route("/status.json", status_json, methods=["GET"]),
            Route("/static/{name}", static, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
        ]
    )
    app.add_middleware(_SecurityHeaders)
    return app


async def serve_web(
    app: Starlette,
    listen: str,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listen`` (``HOST:PORT``; port 0 picks one) until
    cancelled; ``started()`` reports the bound port."""
    async with trio.open_nursery() as nursery:
        # Starlette is an ASGI 3 app; hypercorn's type names its own protocol.
        framework = cast("Framework", app)
        binds: list[str] = await nursery.start(partial(serve, framework, hypercorn_config(listen)))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
