"""The control port: inject an MO into a running simulator from another process.

One JSON object per line over TCP (127.0.0.1 only). A client sends

    {"op": "inject_mo", "source_addr": "0327000686", "destination_addr": "8079",
     "text": "BH MK 0123456789", "wait": 10}

and reads back, one line each:

    {"event": "mo_accepted", "status": 0}        the ESME's deliver_sm_resp status
    {"event": "reply", "text": "...", "message_id": "...", "destination_addr": "..."}
 or {"event": "no_reply", "waited": 10}
 or {"event": "error", "message": "..."}         instead of any of the above

``reply`` is the first submit_sm accepted after the MO whose destination is the MO's
sender.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import trio

from smscd.simulator._errors import SimulatorError

if TYPE_CHECKING:
    from collections.abc import Callable

    from smscd.simulator._simulator import Simulator

__all__ = ["ControlError", "request_mo", "serve_control_connection"]

MAX_LINE: Final = 65536
#: Longest the control port waits for an MO to be answered by the ESME.
MAX_WAIT: Final = 300.0


class ControlError(Exception):
    """The control exchange failed (nobody listening, connection lost, bad answer)."""


class _LineReader:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def readline(self) -> bytes | None:
        """The next line without its newline; None at EOF."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > MAX_LINE:
                raise ControlError("control line too long")
            data = await self._stream.receive_some(MAX_LINE)
            if not data:
                return None
            self._buffer += data


async def _write(stream: trio.abc.SendStream, message: dict[str, Any]) -> None:
    await stream.send_all(json.dumps(message).encode("utf-8") + b"\n")


def _field(request: dict[str, Any], name: str, default: str | None = None) -> str:
    value = request.get(name, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name!r} must be a non-empty string")
    return value


async def _inject(sim: Simulator, stream: trio.abc.SendStream, request: dict[str, Any]) -> None:
    source = _field(request, "source_addr")
    destination = _field(request, "destination_addr", sim.config.short_code)
    text = _field(request, "text")
    wait = request.get("wait", 10.0)
    if not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT:
        raise ValueError(f"'wait' must be a number of seconds from 0 to {MAX_WAIT:g}")
    ton = 1 if source.startswith(("84", "+84")) else 0
    start = len(sim.submitted)
    with trio.move_on_after(wait) as scope:
        status = await sim.inject_mo(
            source.lstrip("+"),
            text,
            source_addr_ton=ton,
            destination_addr=destination,
        )
        await _write(stream, {"event": "mo_accepted", "status": status})
        reply = await sim.wait_submitted_to(source, start=start)
        await _write(
            stream,
            {
                "event": "reply",
                "text": reply.text,
                "message_id": reply.message_id,
                "destination_addr": reply.event.destination_addr,
            },
        )
    if scope.cancelled_caught:
        await _write(stream, {"event": "no_reply", "waited": wait})


async def serve_control_connection(sim: Simulator, stream: trio.SocketStream) -> None:
    """Answer control requests on one connection until the client closes it."""
    reader = _LineReader(stream)
    try:
        async with stream:
            while (line := await reader.readline()) is not None:
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                    if request.get("op") != "inject_mo":
                        raise ValueError(f"unknown op {request.get('op')!r}")
                    await _inject(sim, stream, request)
                except (ValueError, SimulatorError) as exc:
                    await _write(stream, {"event": "error", "message": str(exc)})
    except (trio.BrokenResourceError, trio.ClosedResourceError, ControlError):
        return


async def request_mo(
    host: str,
    port: int,
    *,
    source_addr: str,
    destination_addr: str,
    text: str,
    wait: float,
    on_message: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Ask the simulator on ``host:port`` to inject an MO; pass every answer line to
    ``on_message`` and return the last one (reply, no_reply or error)."""
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ControlError(f"no simulator listening on {host}:{port}") from exc
    async with stream:
        request = {
            "op": "inject_mo",
            "source_addr": source_addr,
            "destination_addr": destination_addr,
            "text": text,
            "wait": wait,
        }
        try:
            await _write(stream, request)
            reader = _LineReader(stream)
            while True:
                line = await reader.readline()
                if line is None:
                    raise ControlError("the simulator closed the control connection")
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ControlError("the simulator sent something that is not a JSON object")
                on_message(message)
                if message.get("event") != "mo_accepted":
                    return message
        except (trio.BrokenResourceError, ValueError) as exc:
            raise ControlError(f"control connection failed: {exc}") from exc
