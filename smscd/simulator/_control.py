"""The control port: drive a running simulator from another process.

One JSON object per line over TCP (127.0.0.1 only). A client sends one request
and reads answer lines until one whose ``event`` is not interim (``mo_accepted``
and ``burst_sent`` are interim); any request may instead be answered
``{"event": "error", "message": "..."}``. The requests (``OPS`` holds the same
summary, which ``{"op": "help"}`` returns):

    {"op": "inject_mo", "source_addr": "0327000686", "destination_addr": "8079",
     "text": "BH MK 0123456789", "wait": 10}
        -> {"event": "mo_accepted", "status": 0}       the ESME's deliver_sm_resp status
        -> {"event": "reply", "text": "...", "message_id": "...", "destination_addr": "..."}
           (the first submit_sm accepted after the MO whose destination is the MO's
           sender) or {"event": "no_reply", "waited": 10}

    {"op": "burst", "n": 50, "source_addr": "84903{i:06d}", "text": "BH MK 55{i:08d}",
     "destination_addr": "8079", "wait": 30}
        N MOs written at once without waiting for answers; ``{i}`` is the MO's index
        -> {"event": "burst_sent", "n": 50, "written": true}
        -> {"event": "burst_answered", "n": 50, "answered": 50, "complete": true,
            "statuses": [0, ...], "seconds": [0.012, ...]}
           per MO in order: the answer's command_status and its delay after the
           write began (null: no answer within ``wait``, or the connection closed)

    {"op": "delay_submit_responses", "seconds": 2}      every submit_sm_resp 2 s late
    {"op": "redeliver_refused", "after_s": 30, "max_attempts": 5}
        MOs refused with a temporary error (or unanswered until the connection
        closes) delivered again after_s later; "after_s": null turns it off
    {"op": "send_raw", "pdu": "0000001000000015...", "wait": 5}
        hex octets written as they are -> {"event": "raw_answered", "status": 0 | null}
    {"op": "statistics"}
        -> {"event": "statistics", "sessions": 1, "submitted": 0,
            "max_outstanding_submits": 0, "deliver_responses": 0, "mo_redeliveries": 0}
    {"op": "help"}                                      -> {"event": "help", "ops": {...}}

``delay_submit_responses`` and ``redeliver_refused`` answer ``{"event": "ok"}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import trio

from smscd.simulator._errors import SimulatorError
from smscd.simulator._inbound import MAX_BURST

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from smscd.simulator._simulator import Simulator

__all__ = ["OPS", "ControlError", "request", "request_mo", "serve_control_connection"]

MAX_LINE: Final = 65536
#: Longest the control port waits for the ESME (an MO's reply, a burst's answers).
MAX_WAIT: Final = 300.0
#: Answer lines that are followed by more.
INTERIM: Final = frozenset({"mo_accepted", "burst_sent"})

#: Every request, with a one-line summary (the module docstring has the fields).
OPS: Final[dict[str, str]] = {
    "inject_mo": "deliver one MO (source_addr, text[, destination_addr, wait]) and "
    "report its deliver_sm_resp and the reply sent back to its sender",
    "burst": "write n MOs at once without waiting (n, source_addr, text[, "
    "destination_addr, wait]; {i} is the MO's index) and report each answer",
    "delay_submit_responses": "send every submit_sm_resp `seconds` late (0: off)",
    "redeliver_refused": "deliver again after `after_s` the MOs refused with a "
    "temporary error or left unanswered (max_attempts; after_s null: off)",
    "send_raw": "write `pdu` (hex) as is to the receiver and report the status of "
    "any response with its sequence number (wait)",
    "statistics": "counters: sessions, submitted, max_outstanding_submits, "
    "deliver_responses, mo_redeliveries",
    "help": "this list",
}


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


def _number(request: dict[str, Any], name: str, default: float, maximum: float) -> float:
    value = request.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= maximum:
        raise ValueError(f"{name!r} must be a number from 0 to {maximum:g}")
    return float(value)


def _integer(request: dict[str, Any], name: str, default: int | None, maximum: int) -> int:
    value = request.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{name!r} must be an integer from 1 to {maximum}")
    return value


def _sender(request: dict[str, Any]) -> tuple[str, int]:
    """source_addr without a leading +, and its TON (1 for 84..., else 0)."""
    source = _field(request, "source_addr")
    return source.lstrip("+"), 1 if source.startswith(("84", "+84")) else 0


_Stream = trio.SocketStream


async def _inject(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    source, ton = _sender(request)
    destination = _field(request, "destination_addr", sim.config.short_code)
    text = _field(request, "text")
    wait = _number(request, "wait", 10.0, MAX_WAIT)
    start = len(sim.submitted)
    with trio.move_on_after(wait) as scope:
        status = await sim.inject_mo(
            source, text, source_addr_ton=ton, destination_addr=destination
        )
        await _write(stream, {"event": "mo_accepted", "status": status})
        reply = await sim.wait_submitted_to(_field(request, "source_addr"), start=start)
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


async def _burst(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    n = _integer(request, "n", None, MAX_BURST)
    source, ton = _sender(request)
    text = _field(request, "text")
    destination = _field(request, "destination_addr", sim.config.short_code)
    wait = _number(request, "wait", 30.0, MAX_WAIT)
    burst = None
    with trio.move_on_after(wait):
        burst = await sim.burst(
            n, source=source, text=text, source_addr_ton=ton, destination_addr=destination
        )
        await _write(
            stream, {"event": "burst_sent", "n": n, "written": burst.written_at is not None}
        )
        await burst.wait_answered()
    if burst is None:
        raise SimulatorError(f"the burst was not written within {wait:g} s")
    statuses: list[int | None] = [None] * n
    seconds: list[float | None] = [None] * n
    for response in burst.responses:
        statuses[response.index] = response.status
        if response.status is not None:
            seconds[response.index] = round(response.at - burst.sent_at, 6)
    await _write(
        stream,
        {
            "event": "burst_answered",
            "n": n,
            "answered": sum(status is not None for status in statuses),
            "complete": len(burst.responses) == n,
            "statuses": statuses,
            "seconds": seconds,
        },
    )


async def _delay(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    sim.delay_submit_responses(_number(request, "seconds", 0.0, MAX_WAIT))
    await _write(stream, {"event": "ok"})


async def _redeliver(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    if request.get("after_s") is None:
        sim.redeliver_refused(None)
    else:
        after = _number(request, "after_s", 0.0, 86400.0)
        sim.redeliver_refused(after, max_attempts=_integer(request, "max_attempts", 5, 1000))
    await _write(stream, {"event": "ok"})


async def _send_raw(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    try:
        pdu = bytes.fromhex(_field(request, "pdu"))
    except ValueError as exc:
        raise ValueError(f"'pdu' must be hex octets: {exc}") from exc
    status = await sim.send_raw(pdu, wait=_number(request, "wait", 5.0, MAX_WAIT))
    await _write(stream, {"event": "raw_answered", "status": status})


async def _statistics(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    await _write(
        stream,
        {
            "event": "statistics",
            "sessions": len(sim.sessions),
            "submitted": len(sim.submitted),
            "max_outstanding_submits": sim.max_outstanding_submits,
            "deliver_responses": len(sim.deliver_responses),
            "mo_redeliveries": sim.mo_redeliveries,
        },
    )


async def _help(sim: Simulator, stream: _Stream, request: dict[str, Any]) -> None:
    await _write(stream, {"event": "help", "ops": OPS})


_HANDLERS: Final[dict[str, Callable[[Simulator, _Stream, dict[str, Any]], Awaitable[None]]]] = {
    "inject_mo": _inject,
    "burst": _burst,
    "delay_submit_responses": _delay,
    "redeliver_refused": _redeliver,
    "send_raw": _send_raw,
    "statistics": _statistics,
    "help": _help,
}


async def serve_control_connection(sim: Simulator, stream: trio.SocketStream) -> None:
    """Answer control requests on one connection until the client closes it."""
    reader = _LineReader(stream)
    try:
        async with stream:
            while (line := await reader.readline()) is not None:
                try:
                    message = json.loads(line)
                    if not isinstance(message, dict):
                        raise ValueError("a request is a JSON object")
                    handler = _HANDLERS.get(str(message.get("op")))
                    if handler is None:
                        raise ValueError(
                            f"unknown op {message.get('op')!r} (ops: {', '.join(OPS)})"
                        )
                    await handler(sim, stream, message)
                except (ValueError, SimulatorError) as exc:
                    await _write(stream, {"event": "error", "message": str(exc)})
    except (trio.BrokenResourceError, trio.ClosedResourceError, ControlError):
        return


async def request(
    host: str,
    port: int,
    message: dict[str, Any],
    *,
    on_message: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Send one control request to the simulator on ``host:port``; pass every
    answer line to ``on_message`` and return the last (non-interim) one."""
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ControlError(f"no simulator listening on {host}:{port}") from exc
    async with stream:
        try:
            await _write(stream, message)
            reader = _LineReader(stream)
            while True:
                line = await reader.readline()
                if line is None:
                    raise ControlError("the simulator closed the control connection")
                answer = json.loads(line)
                if not isinstance(answer, dict):
                    raise ControlError("the simulator sent something that is not a JSON object")
                on_message(answer)
                if answer.get("event") not in INTERIM:
                    return answer
        except (trio.BrokenResourceError, ValueError) as exc:
            raise ControlError(f"control connection failed: {exc}") from exc


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
    message = {
        "op": "inject_mo",
        "source_addr": source_addr,
        "destination_addr": destination_addr,
        "text": text,
        "wait": wait,
    }
    return await request(host, port, message, on_message=on_message)
