"""The API's front process: HTTP in a process of its own.

    python -m smscd.api.front RPC_FD LISTEN_FD

The daemon (``smscd.service.api.run_front``) binds the API's listening socket,
makes a socketpair, and starts this process with both (``LISTEN_FD``,
``RPC_FD``). Here hypercorn serves the Starlette app (``smscd.api.app``) on
that socket, over TLS when the settings name a certificate, and every call of
the app's backend is a frame to the daemon (``smscd.api._remote``). So the
HTTP stack (parsing, routing, validation, the request's log line) runs on a
core of its own, and the daemon's event loop keeps the links, the stages and
the store.

The first frame from the daemon is the settings: ``max_body``, ``templates``,
``cert``, ``key``, ``log_format``, ``log_level``. The process ends when the
daemon closes its end (it stopped, or was killed: the kernel closes it), after
at most hypercorn's graceful second for the requests in progress. Signals are
the daemon's to handle (a terminal's Ctrl-C reaches the whole process group),
so it ignores SIGINT and SIGTERM, like the hashing processes.
"""

from __future__ import annotations

import gc
import signal
import socket
import sys
from typing import TYPE_CHECKING, cast

import trio
from hypercorn.trio import serve

from smscd._http import hypercorn_config
from smscd.api._remote import FrameStream, RemoteBackend
from smscd.api.app import create_api_app
from smscd.logging import configure_logging, flush_logs

if TYPE_CHECKING:
    from hypercorn.typing import Framework

__all__ = ["main"]


async def serve_front(rpc: socket.socket, listen_fd: int) -> None:
    """Serve the API on ``listen_fd`` with the backend across ``rpc`` until
    the daemon closes it."""
    frames = FrameStream(trio.SocketStream(trio.socket.from_stdlib_socket(rpc)))
    setup = await frames.receive()
    if setup is None or setup.get("op") != "setup":
        return
    backend = RemoteBackend(frames)
    configure_logging(
        format=str(setup["log_format"]),
        level=str(setup["log_level"]),
        sink=backend.forward_warnings,
    )
    app = create_api_app(
        backend,
        templates=dict(setup["templates"]),
        max_body=int(setup["max_body"]),
        observe=backend.observe,
    )
    config = hypercorn_config(f"fd://{listen_fd}")
    if setup.get("cert") and setup.get("key"):
        config.certfile = str(setup["cert"])
        config.keyfile = str(setup["key"])
    # What was imported so far lives as long as the process (see smscd.daemon).
    gc.freeze()
    daemon_gone = trio.Event()

    async def answers() -> None:
        await backend.run()
        daemon_gone.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answers)
        # Starlette is an ASGI 3 app; hypercorn's type names its own protocol.
        await serve(cast("Framework", app), config, shutdown_trigger=daemon_gone.wait)
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    rpc_fd, listen_fd = (int(arg) for arg in argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    rpc = socket.socket(fileno=rpc_fd)
    try:
        trio.run(serve_front, rpc, listen_fd)
    finally:
        flush_logs()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
