"""One TCP connection of the simulated SMSC, and its writer.

A ``Session`` is a ``smscd.smpp.Connection`` in the SMSC role (it decides which PDU
is legal in which bind state), the stream, the slots its own requests wait in, and
one writer through which every write goes.

The writer is the link's group-flush writer (``smscd.link.FlushWriter``):
whoever writes while no flush runs becomes the flusher and, after one pass of the
scheduler (so the others writing in that pass join in), encodes the whole queue
with ``Connection.send`` and writes it with one ``send_all``; the others wait for
that flush to end. So the core's idea of the order is the order on the wire, one
flush at a time. Raw bytes (garbage, hand-made PDUs) go through the same queue
without the core. A write has no timeout (an ESME may take its time to read a
burst) and a failed one closes the session; the session's methods say whether a
write reached the wire rather than raise.

Requests the SMSC sends park a ``Pending`` slot keyed by sequence number; the
reader fills it when the response arrives, or ``close()`` fills it with ``None``.
Hand-made PDUs, which the core does not know, wait in ``raw_pending`` for any
response with their sequence, seen by the ``HeaderTap`` before the core decodes.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import TYPE_CHECKING, Final

import attrs
import trio

from smscd.link import FlushWriter, Outgoing
from smscd.smpp import BindMode, Connection, Role, SmppError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from smscd.smpp import EnquireLink, Event, Response, Unbind

__all__ = [
    "RESPONSE_BIT",
    "HeaderTap",
    "Pending",
    "RawPending",
    "Session",
    "SessionInfo",
]

#: command_id bit that marks a response (SMPP 3.4 §5.1.2.1).
RESPONSE_BIT: Final = 0x80000000
_RECEIVING_MODES: Final = frozenset({BindMode.RECEIVER, BindMode.TRANSCEIVER})


@attrs.frozen(kw_only=True)
class SessionInfo:
    """One bound session as seen from the SMSC."""

    id: int
    mode: BindMode
    system_id: str


class HeaderTap:
    """Follows the framing of what the ESME sends (16-byte header, skip the body)
    and reports the (command_id, command_status, sequence) of each PDU, so that
    answers to hand-made PDUs the core never sent are seen with their status."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._skip = 0
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[int, int, int]]:
        headers: list[tuple[int, int, int]] = []
        view = memoryview(data)
        while view and not self.broken:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            need = 16 - len(self._header)
            self._header += view[:need]
            view = view[need:]
            if len(self._header) < 16:
                break
            length, command_id, status, sequence = struct.unpack(">IIII", self._header)
            self._header.clear()
            if length < 16:
                self.broken = True  # the core raises FramingError for this one
                break
            self._skip = length - 16
            headers.append((command_id, status, sequence))
        return headers


@attrs.define(eq=False)
class Pending:
    """The slot a request of ours waits in for its response (``None``: the
    connection closed first). ``on_resolve`` hears the outcome as it comes, for
    callers that do not wait themselves (a burst of thousands of MOs)."""

    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None
    on_resolve: Callable[[Response | None], None] | None = None

    def resolve(self, response: Response | None) -> None:
        if not self.done.is_set():
            self.response = response
            self.done.set()
            if self.on_resolve is not None:
                self.on_resolve(response)


@attrs.define(eq=False)
class RawPending:
    """The slot a hand-made PDU waits in for any response with its sequence."""

    done: trio.Event = attrs.Factory(trio.Event)
    #: command_id and command_status of the response (None: none came).
    command_id: int | None = None
    status: int | None = None

    def resolve(self, command_id: int, status: int) -> None:
        if not self.done.is_set():
            self.command_id = command_id
            self.status = status
            self.done.set()


class Session:
    """One connection (see the module docstring). ``on_close`` is called once,
    when the session is marked closed."""

    def __init__(
        self,
        session_id: int,
        stream: trio.SocketStream,
        *,
        deliver_window: int,
        on_close: Callable[[Session], None],
    ) -> None:
        self.id = session_id
        self.stream = stream
        self.conn = Connection(Role.SMSC)
        self.writer = FlushWriter(stream, self.conn, on_failure=self.close)
        #: deliver_sm this session keeps unanswered at most (bursts bypass it).
        self.deliver_window = trio.Semaphore(deliver_window)
        self.mode: BindMode | None = None
        self.system_id = ""
        self.pending: dict[int, Pending] = {}
        #: Sequences of hand-made PDUs waiting for any response.
        self.raw_pending: dict[int, RawPending] = {}
        self.tap = HeaderTap()
        #: submit_sm received and not answered yet.
        self.outstanding_submits = 0
        self.closed = False
        self._on_close = on_close

    @property
    def receives(self) -> bool:
        return not self.closed and self.mode in _RECEIVING_MODES

    def info(self) -> SessionInfo | None:
        if self.closed or self.mode is None:
            return None
        return SessionInfo(id=self.id, mode=self.mode, system_id=self.system_id)

    def close(self) -> None:
        """Mark the session closed: every waiting request gets ``None``."""
        if self.closed:
            return
        self.closed = True
        for pending in list(self.pending.values()):
            pending.resolve(None)
        for raw in self.raw_pending.values():
            raw.done.set()
        self._on_close(self)

    async def reset(self) -> None:
        """Close with a TCP RST (no unbind)."""
        with contextlib.suppress(OSError):
            self.stream.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.close()
        await trio.aclose_forcefully(self.stream)

    # --- writing ---------------------------------------------------------------

    def queue(
        self, payload: Event | bytes, *, on_taken: Callable[[], None] | None = None
    ) -> Outgoing:
        """Queue ``payload`` for the next flush (on a closed session: an item
        already done, never written)."""
        if self.closed:
            return Outgoing(
                payload=payload,
                on_taken=on_taken,
                taken=True,
                done=True,
                error=trio.ClosedResourceError("the session is closed"),
            )
        return self.writer.enqueue(payload, on_taken=on_taken)

    def unqueue(self, items: Iterable[Outgoing]) -> None:
        """Take back every item of ``items`` no flush has taken yet."""
        self.writer.discard_all(items)

    async def send(self, payload: Event | bytes) -> bool:
        """Encode (events) and write ``payload``; False when the session can no
        longer take it."""
        if self.closed:
            return False
        return await self.written(self.queue(payload))

    async def written(self, item: Outgoing) -> bool:
        """Wait until the flush that takes ``item`` is over; whether it was written
        (False: the core refused it, or the connection failed)."""
        with contextlib.suppress(SmppError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self.writer.written(item)
        return item.written

    async def flush(self) -> None:
        """Write whatever is queued now and wait for it."""
        if self.writer.queued:
            await self.written(self.writer.queued[-1])

    async def request(self, event: Unbind | EnquireLink) -> Pending | None:
        """Send a request of ours; its slot, or None when it could not be written."""
        pending = Pending()
        self.pending[event.sequence] = pending
        if not await self.send(event):
            self.pending.pop(event.sequence, None)
            return None
        return pending
