"""The API's backend across a process boundary: :class:`RemoteBackend` in the
front process, :func:`serve_backend` in the daemon.

The front (``smscd.api.front``) speaks HTTP; the daemon holds the store, the
links, the hashing processes and the numbers in hand. Between them runs one
stream socket (a ``socketpair`` the daemon made): each call of the
:class:`~smscd.api.ApiBackend` Protocol is one frame, and so is its answer.

Wire format
-----------
A frame is a 4-byte big-endian length and that many bytes of JSON (an object).
A call is ``{"n": SEQ, "op": OP, ...arguments}`` with OP one of ``auth``
(``token``), ``send`` (``client``, ``request``), ``status`` (``client``,
``id``) and ``reset`` (``client``, ``call``); its answer is ``{"n": SEQ,
"ok": VALUE}``, or ``{"n": SEQ, "error": "unavailable" | "internal"}``. The
values are the Protocol's attrs classes as JSON objects (a set as a sorted
list, a time in ISO 8601). ``{"op": "seen", "route", "status"}`` has no answer:
the front counts a request it answered, and ``{"op": "event", "level",
"event"}`` carries one of the front's warnings or errors (already masked) to
the daemon's status page. The first frame of the daemon is the
front's settings (``setup``), before any answer.

Both processes are one install of smscd started by one daemon, so a frame is
trusted as the daemon's own data; a frame that does not parse ends the
connection (the daemon then starts a new front). The token and, for a
``reset_ok``, the new password cross this socket in memory, as a password
crosses the pipe to a hashing process; neither is logged.

Failure: while the daemon answers nothing (it was killed), the front's pending
and new calls raise :class:`~smscd.api.ApiUnavailable` (503), and the front
ends. A call the daemon fails with anything but ``ApiUnavailable`` is logged
there by type and answered ``internal``: the front raises
:class:`RemoteFailure` (500).
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import structlog
import trio

from smscd.api._backend import (
    ApiClient,
    ApiUnavailable,
    MessageAccepted,
    MessageRequest,
    MessageStatus,
    ResetAnswer,
    ResetCall,
)
from smscd.api._tokens import token_hash

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

    from smscd.api._backend import ApiBackend

__all__ = [
    "MAX_FRAME",
    "TOKEN_CACHE_S",
    "FrameStream",
    "RemoteBackend",
    "RemoteFailure",
    "decode_value",
    "encode_value",
    "serve_backend",
]

log = structlog.get_logger("smscd.api")

#: Seconds the front trusts a client found by its token without asking the
#: daemon again: a revoked token is refused within this.
TOKEN_CACHE_S: Final = 1.0
#: Tokens remembered at most (all are forgotten at once past it).
KNOWN_TOKENS_MAX: Final = 1000
#: The largest frame either side reads; a longer one ends the connection.
MAX_FRAME: Final = 1 << 20
_LENGTH: Final = struct.Struct(">I")

_T = TypeVar("_T")

#: The front's log levels that also reach the daemon (``forward_warnings``).
_FORWARDED: Final = frozenset({"warning", "error", "critical", "exception"})


class RemoteFailure(Exception):
    """The daemon failed the call with an error of its own (logged there)."""


class ProtocolError(Exception):
    """A frame that is not this protocol's: the connection ends."""


def encode_value(value: Any) -> dict[str, Any]:
    """One of the Protocol's attrs values as a JSON object."""
    return attrs.asdict(value, value_serializer=_plain)


def _plain(_instance: object, _field: object, value: object) -> object:
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _time_or_none(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


#: Fields whose JSON form is not their Python form.
_DECODERS: Final[dict[str, Callable[[Any], Any]]] = {
    "scopes": frozenset,
    "created_at": datetime.fromisoformat,
    "accepted_at": _time_or_none,
    "final_at": _time_or_none,
}


def decode_value(cls: type[_T], data: object) -> _T:
    """The attrs value of ``cls`` that :func:`encode_value` made ``data`` of;
    ProtocolError if it is not one."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{cls.__name__}: not an object")
    try:
        fields = {
            name: _DECODERS[name](value) if name in _DECODERS else value
            for name, value in data.items()
        }
        return cls(**fields)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{cls.__name__}: {exc}") from None


@attrs.define(eq=False)
class FrameStream:
    """Frames over a trio stream: :meth:`send` queues one (it never waits; a
    writer task sends whatever is queued in one write), :meth:`receive` reads
    the next (None at the end of the stream)."""

    stream: trio.abc.Stream
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _out: tuple[trio.MemorySendChannel[bytes], trio.MemoryReceiveChannel[bytes]] = attrs.field(
        factory=lambda: trio.open_memory_channel[bytes](math.inf), init=False
    )

    def send(self, frame: dict[str, Any]) -> None:
        body = json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            self._out[0].send_nowait(_LENGTH.pack(len(body)) + body)
        except trio.ClosedResourceError:
            raise ApiUnavailable("the connection to the daemon is closed") from None

    def close_sending(self) -> None:
        self._out[0].close()

    async def write_queued(self) -> None:
        """Send every queued frame, a batch per write, until :meth:`close_sending`."""
        receive = self._out[1]
        async for first in receive:
            batch = [first]
            while True:
                try:
                    batch.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self.stream.send_all(b"".join(batch))

    async def receive(self) -> dict[str, Any] | None:
        buffer = self._buffer
        while True:
            if len(buffer) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer)
                if size > MAX_FRAME:
                    raise ProtocolError(f"a frame of {size} bytes")
                end = _LENGTH.size + size
                if len(buffer) >= end:
                    body = bytes(buffer[_LENGTH.size : end])
                    del buffer[:end]
                    try:
                        frame = json.loads(body)
                    except ValueError as exc:
                        raise ProtocolError(f"not JSON: {exc}") from None
                    if not isinstance(frame, dict):
                        raise ProtocolError("a frame that is not an object")
                    return frame
            data = await self.stream.receive_some(65536)
            if not data:
                if buffer:
                    raise ProtocolError("the stream ended inside a frame")
                return None
            buffer += data


@attrs.define(eq=False)
class _Call:
    done: trio.Event = attrs.field(factory=trio.Event)
    answer: dict[str, Any] | None = None


@attrs.define(eq=False)
class RemoteBackend:
    """``ApiBackend`` in the front process: every call a frame to the daemon
    (see the module doc). :meth:`run` reads the answers; it returns when the
    daemon closes the connection, after which every call is ApiUnavailable.

    A client found by its token is remembered for ``cache_s``, so a request
    usually costs the daemon one call, not two."""

    frames: FrameStream
    cache_s: float = TOKEN_CACHE_S
    _calls: dict[int, _Call] = attrs.field(factory=dict, init=False)
    _next: int = attrs.field(default=0, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _known: dict[str, tuple[ApiClient, float]] = attrs.field(factory=dict, init=False)

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.frames.write_queued)
                try:
                    while (frame := await self.frames.receive()) is not None:
                        call = self._calls.pop(frame.get("n", -1), None)
                        if call is not None:
                            call.answer = frame
                            call.done.set()
                except (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError) as exc:
                    log.error("api_daemon_connection_lost", error=str(exc))
                nursery.cancel_scope.cancel()
        finally:
            self._closed = True
            self.frames.close_sending()
            for call in self._calls.values():
                call.done.set()
            self._calls.clear()

    def observe(self, route: str, status: int) -> None:
        """Tell the daemon a request was answered (its counter of requests)."""
        if not self._closed:
            self.frames.send({"op": "seen", "route": route, "status": status})

    def forward_warnings(
        self, _logger: object, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor (after the masking): each warning or error
        of the front also goes to the daemon, for the status page's last
        warnings. Only plain values go; the event is returned unchanged."""
        level = event_dict.get("level", method)
        if level in _FORWARDED and not self._closed and trio.lowlevel.in_trio_run():
            plain = {
                key: value
                for key, value in event_dict.items()
                if isinstance(value, (str, int, float, bool)) or value is None
            }
            self.frames.send({"op": "event", "level": level, "event": plain})
        return event_dict

    async def _call(self, op: str, **arguments: Any) -> Any:
        if self._closed:
            raise ApiUnavailable("the daemon is not answering")
        self._next += 1
        number = self._next
        call = self._calls[number] = _Call()
        try:
            self.frames.send({"n": number, "op": op, **arguments})
            await call.done.wait()
        finally:
            self._calls.pop(number, None)
        answer = call.answer
        if answer is None:
            raise ApiUnavailable("the daemon is not answering")
        if "ok" in answer:
            return answer["ok"]
        if answer.get("error") == "unavailable":
            raise ApiUnavailable("the daemon could not answer now")
        raise RemoteFailure(str(answer.get("error")))

    async def authenticate(self, token: str) -> ApiClient | None:
        hashed = token_hash(token)
        now = trio.current_time()
        known = self._known.get(hashed)
        if known is not None and known[1] > now:
            return known[0]
        found = await self._call("auth", token=token)
        if found is None:
            self._known.pop(hashed, None)
            return None
        client = decode_value(ApiClient, found)
        if len(self._known) >= KNOWN_TOKENS_MAX:
            self._known.clear()
        self._known[hashed] = (client, now + self.cache_s)
        return client

    async def send_message(self, client: ApiClient, request: MessageRequest) -> MessageAccepted:
        answer = await self._call(
            "send", client=encode_value(client), request=encode_value(request)
        )
        return decode_value(MessageAccepted, answer)

    async def message_status(self, client: ApiClient, message_id: int) -> MessageStatus | None:
        answer = await self._call("status", client=encode_value(client), id=message_id)
        return None if answer is None else decode_value(MessageStatus, answer)

    async def reset(self, client: ApiClient, call: ResetCall) -> ResetAnswer:
        answer = await self._call("reset", client=encode_value(client), call=encode_value(call))
        return decode_value(ResetAnswer, answer)


async def serve_backend(
    frames: FrameStream,
    backend: ApiBackend,
    observe: Callable[[str, int], None],
    record: Callable[[Mapping[str, Any], str], None] | None = None,
) -> None:
    """The daemon's side: answer the front's calls on ``frames`` from
    ``backend``, each in a task of its own, until the front closes the
    connection or sends what is not this protocol (both end this call; the
    calls in progress are cancelled). ``record(event, level)`` gets the
    front's warnings and errors."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(frames.write_queued)
        try:
            while (frame := await frames.receive()) is not None:
                op = frame.get("op")
                if op == "seen":
                    observe(str(frame.get("route")), int(frame.get("status", 0)))
                elif op == "event":
                    event, level = frame.get("event"), frame.get("level")
                    if record is not None and isinstance(event, dict) and level in _FORWARDED:
                        record(event, str(level))
                else:
                    nursery.start_soon(_answer, frames, backend, frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.warning("api_front_connection_lost", error=str(exc))
        except ProtocolError as exc:
            log.error("api_front_protocol_error", error=str(exc))
        nursery.cancel_scope.cancel()


async def _answer(frames: FrameStream, backend: ApiBackend, frame: dict[str, Any]) -> None:
    number = frame.get("n")
    try:
        result = await _dispatch(backend, frame)
    except ApiUnavailable:
        answer: dict[str, Any] = {"n": number, "error": "unavailable"}
    except Exception as exc:
        # A bug, not the caller's: its type only (a message may carry data).
        log.error("api_call_failed", op=frame.get("op"), error=type(exc).__name__)
        answer = {"n": number, "error": "internal"}
    else:
        answer = {"n": number, "ok": result}
    with contextlib.suppress(ApiUnavailable):  # the front is gone; it asks no more
        frames.send(answer)


async def _dispatch(backend: ApiBackend, frame: dict[str, Any]) -> object:
    op = frame.get("op")
    if op == "auth":
        client = await backend.authenticate(str(frame["token"]))
        return None if client is None else encode_value(client)
    client = decode_value(ApiClient, frame.get("client"))
    if op == "send":
        request = decode_value(MessageRequest, frame.get("request"))
        return encode_value(await backend.send_message(client, request))
    if op == "status":
        status = await backend.message_status(client, int(frame["id"]))
        return None if status is None else encode_value(status)
    if op == "reset":
        call = decode_value(ResetCall, frame.get("call"))
        return encode_value(await backend.reset(client, call))
    raise ProtocolError(f"unknown op {op!r}")
