"""One TCP connection of the simulated SMSC, and its writer.

A ``Session`` is a ``smscd.smpp.Connection`` in the SMSC role (it decides which PDU
is legal in which bind state), the stream, the slots its own requests wait in, and
one queue through which every write goes.

Writes are group-committed: whoever writes while no flush runs becomes the flusher
and, after one pass of the scheduler (so the others writing in that pass join in),
encodes the whole queue with ``Connection.send`` and writes it with one
``send_all``; the others wait for that flush to end. So the core's idea of the
order is the order on the wire, one flush at a time. Raw bytes (garbage, hand-made
PDUs) go through the same queue without the core.

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

from smscd.smpp import BindMode, Connection, LocalProtocolError, Role

if TYPE_CHECKING:
    from collections.abc import Callable

    from smscd.smpp import EnquireLink, Event, Response, Unbind

__all__ = [
    "RESPONSE_BIT",
    "HeaderTap",
    "Outgoing",
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
class Outgoing:
    """One event (or raw bytes) in a session's write queue."""

    payload: Event | bytes
    #: Called when a flush takes it, just before its bytes go to send_all.
    on_taken: Callable[[], None] | None = None
    #: Taken by a flush (encoded or refused, and handed to send_all).
    taken: bool = False
    #: The flush that took it is over; ``written`` says whether it reached the wire.
    done: bool = False
    written: bool = False


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
        self.outgoing: list[Outgoing] = []
        #: A flush is running (one at a time); its end sets ``flushed``.
        self.flushing = False
        self.flushed = trio.Event()
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
        """Queue ``payload`` for the next flush."""
        item = Outgoing(payload=payload, on_taken=on_taken)
        if self.closed:
            item.taken = item.done = True
        else:
            self.outgoing.append(item)
        return item

    async def send(self, payload: Event | bytes) -> bool:
        """Encode (events) and write ``payload``; False when the session can no
        longer take it."""
        if self.closed:
            return False
        return await self.written(self.queue(payload))

    async def written(self, item: Outgoing) -> bool:
        """Wait until the flush that takes ``item`` is over; whether it was written."""
        try:
            while not item.done:
                if self.flushing:
                    await self.flushed.wait()
                    continue
                self.flushing = True
                try:
                    # One pass of the scheduler: the others writing now join this batch.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    await self._flush()
                finally:
                    self.flushing = False
                    self.flushed.set()
                    self.flushed = trio.Event()
        except BaseException:
            if not item.taken:
                self.outgoing.remove(item)
            raise
        return item.written

    async def _flush(self) -> None:
        batch, self.outgoing = self.outgoing, []
        now = trio.current_time()
        chunks: list[bytes] = []
        encoded: list[Outgoing] = []
        for item in batch:
            item.taken = True
            if item.on_taken is not None:
                item.on_taken()
            if isinstance(item.payload, bytes):
                chunks.append(item.payload)
                encoded.append(item)
                continue
            try:
                chunks.append(self.conn.send(item.payload, now=now))
            except LocalProtocolError:
                continue  # the bind state moved on (e.g. unbound) while this waited
            encoded.append(item)
        try:
            if chunks:
                await self.stream.send_all(b"".join(chunks))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.conn.send_failed()
            self.close()
        except BaseException:
            self.conn.send_failed()
            raise
        else:
            for item in encoded:
                item.written = True
        finally:
            for item in batch:
                item.done = True

    async def request(self, event: Unbind | EnquireLink) -> Pending | None:
        """Send a request of ours; its slot, or None when it could not be written."""
        pending = Pending()
        self.pending[event.sequence] = pending
        if not await self.send(event):
            self.pending.pop(event.sequence, None)
            return None
        return pending
