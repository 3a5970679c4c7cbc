"""A minimal HTTP/1.0 endpoint on trio for ``/metrics`` and ``/healthz``.

Two read-only GET routes for a Prometheus scraper and a health probe do not
justify a web framework; prometheus-client renders the text format, this module
only frames it. Requests are bounded in size and time; anything else gets 404/405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["Handler", "serve_http"]

#: A route handler returns (status, content type, body).
Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_MAX_REQUEST = 8192
_REQUEST_TIMEOUT = 5.0


async def _handle(stream: trio.abc.Stream, routes: dict[str, Handler]) -> None:
    data = b""
    with trio.move_on_after(_REQUEST_TIMEOUT):
        while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < _MAX_REQUEST:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = line.split()
    if len(parts) < 2:
        status, ctype, body = 405, "text/plain", b"bad request\n"
    elif parts[0] not in ("GET", "HEAD"):
        status, ctype, body = 405, "text/plain", b"method not allowed\n"
    else:
        handler = routes.get(parts[1].split("?", 1)[0])
        if handler is None:
            status, ctype, body = 404, "text/plain", b"not found\n"
        else:
            status, ctype, body = await handler()
    head = (
        f"HTTP/1.0 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with trio.move_on_after(_REQUEST_TIMEOUT):
            await stream.send_all(head + (body if parts[:1] != ["HEAD"] else b""))
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def serve_http(
    host: str,
    port: int,
    routes: dict[str, Handler],
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``started()`` reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as nursery:
        task_status.started(listeners[0].socket.getsockname()[1])

        async def handler(stream: trio.SocketStream) -> None:
            await _handle(stream, routes)

        await trio.serve_listeners(handler, listeners, handler_nursery=nursery)
