"""One TCP connection of a link: its stream, its sans-I/O SMPP core, its writer,
and what waits on it -- the link's requests for their responses, the inbound
items handed out for their acks, the parts of incomplete multi-part MOs."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

import attrs
import trio

from smscd.link._flush import FlushWriter
from smscd.smpp import Connection, Role, SmppError

if TYPE_CHECKING:
    from smscd.link._config import LinkConfig
    from smscd.link._flush import Outgoing
    from smscd.link._inbound import Ack
    from smscd.smpp import BindMode, DeliverSm, Event, Request, Response

__all__ = ["WRITE_ERRORS", "HeldPart", "Pending", "Session"]

#: What a write raises once the connection is gone.
WRITE_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.define(eq=False)
class Pending:
    """A request sent on a session, waiting for its response."""

    request: Request
    outgoing: Outgoing | None = None
    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None
    #: ``"timeout"`` or ``"connection_lost"`` when no response will come.
    failure: str | None = None

    def resolve(self, response: Response) -> None:
        if not self.done.is_set():
            self.response = response
            self.done.set()

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.failure = reason
            self.done.set()


@attrs.define(eq=False)
class HeldPart:
    """A part of an incomplete multi-part MO whose deliver_sm_resp is held back."""

    deliver: DeliverSm
    deadline: float


class Session:
    """One TCP connection, its SMPP core, and what is waiting on it.

    Every write goes through ``writer`` (``smscd.link._flush``); a write that
    fails closes the session (``write_failed``).
    """

    def __init__(
        self, *, config: LinkConfig, mode: BindMode, bind_id: str, stream: trio.SocketStream
    ) -> None:
        self.mode = mode
        self.bind_id = bind_id
        self.stream = stream
        self.conn = Connection(Role.ESME, response_timeout=config.response_timeout)
        # A write that takes a whole response_timeout means a dead peer.
        self.writer = FlushWriter(
            stream,
            self.conn,
            write_timeout=config.response_timeout,
            on_failure=functools.partial(self.close, "write_failed"),
        )
        self.cancel_scope = trio.CancelScope()
        self.pending: dict[int, Pending] = {}
        self.enquire: Pending | None = None
        self.last_received = trio.current_time()
        self.bound = False
        self.closed = False
        self.close_reason = ""
        self.bind_status: int | None = None
        #: trio.current_time() of the bind_resp with status 0.
        self.bound_at: float | None = None
        #: Parts of incomplete multi-part MOs, by deliver_sm sequence.
        self.waiting_parts: dict[int, HeldPart] = {}
        #: Inbound items handed out and not acked yet.
        self.held: set[Ack] = set()
        #: deliver_sm read and not answered: the parts of ``held`` plus
        #: ``waiting_parts`` (inbound flow control, ``smscd.link._inbound``).
        self.unanswered = 0

    def close(self, reason: str) -> None:
        """End the session (idempotent); the supervisor cleans up and reconnects."""
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.bound = False
            # Closing the socket now (not only in the supervisor's cleanup) wakes
            # a write that is blocked on a peer which stopped reading.
            self.stream.socket.close()
        self.cancel_scope.cancel()

    # --- writing --------------------------------------------------------------------

    def enqueue(self, event: Event | bytes) -> Outgoing:
        return self.writer.enqueue(event)

    async def written(self, item: Outgoing) -> None:
        """Wait until ``item`` is on the wire. Raises SmppError (the core refused
        it: nothing written) or a trio resource error (the session is closed)."""
        await self.writer.written(item)

    async def wait_written(self, item: Outgoing) -> None:
        """Like ``written``, but the outcome is left in ``item.error`` (Cancelled
        still propagates)."""
        try:
            await self.writer.written(item)
        except (SmppError, *WRITE_ERRORS):
            pass

    async def send(self, event: Event | bytes) -> None:
        """Write one event (or raw bytes) now; see ``written`` for errors."""
        await self.writer.send(event)

    async def reply(self, response: Response) -> bool:
        """Send a response; False if the session can no longer carry it."""
        if self.closed:
            return False
        try:
            await self.writer.send(response)
        except (SmppError, *WRITE_ERRORS):
            return False
        return True

    # --- requests -------------------------------------------------------------------

    async def request(self, request: Request) -> Pending:
        """Send a request; the returned slot is resolved by the reader or failed."""
        pending = self.start_request(request)
        await self.finish_request(pending)
        return pending

    def start_request(self, request: Request) -> Pending:
        """Queue a request (its place on the wire is fixed from now on)."""
        pending = Pending(request=request)
        pending.outgoing = self.writer.enqueue(request)
        self.pending[request.sequence] = pending
        return pending

    async def finish_request(self, pending: Pending) -> None:
        assert pending.outgoing is not None
        try:
            await self.writer.written(pending.outgoing)
        except BaseException:
            if self.pending.get(pending.request.sequence) is pending:
                del self.pending[pending.request.sequence]
            raise

    def abandon_request(self, pending: Pending) -> None:
        """Undo :meth:`start_request` for a request its task gave up before
        writing it (as a write cancelled before its flush would)."""
        if pending.outgoing is not None:
            self.writer.discard(pending.outgoing)
        if self.pending.get(pending.request.sequence) is pending:
            del self.pending[pending.request.sequence]

    def fail_all(self, reason: str) -> None:
        for pending in self.pending.values():
            pending.fail(reason)
        self.pending.clear()
