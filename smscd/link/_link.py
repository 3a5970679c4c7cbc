"""The trio driver of one SMSC bind.

Theory of operation
-------------------
A :class:`Link` runs one *supervisor* task per TCP connection it needs (one for a
transceiver bind, two for a transmitter + receiver pair). A supervisor loops:
connect (``connect_timeout``), bind, serve until the connection ends, then sleep a
capped exponential backoff with jitter and start again, until :meth:`Link.stop`.
The backoff starts over only after a bind that lasted ``backoff_max``: an SMSC
that accepts binds and drops them at once is retried ever more slowly.

Each connection is a :class:`_Session`: a trio stream plus a sans-I/O
``smscd.smpp.Connection``. Inside it, three things touch the wire:

* the *reader* task owns ``receive_some()``. It feeds the core, answers
  enquire_link and unbind itself (never behind an application queue), resolves
  responses to their waiting requests, and turns deliver_sm into inbound items
  (see *inbound flow control* below: the one place where it waits);
* the *timer* task sends enquire_link after ``enquire_link_interval`` of silence,
  asks the core which requests have expired (a timed-out request closes the
  session: the SMSC is not answering), and answers inbound items the caller did
  not ack within ``ack_timeout``;
* anyone writing (submitters, the reader, the timer, ack handles) goes through
  the session's write queue: events queue in order, and one *flush* at a time
  encodes the whole queue with the core's ``send`` and writes it with one
  ``send_all`` (group commit: one syscall for many PDUs under load). A writer
  that finds no flush running runs one itself, after one pass of the scheduler
  so that the others writing in that pass join in; the end of a flush wakes all
  its waiters at once. If ``send_all`` raises, the core is told (``send_failed``)
  and the session is closed. :func:`ack_all` queues the answers of many inbound
  items before waiting once, so a batch of acks costs one task and one write.

Submits first wait for a bound transmitter (each on its own, with a timeout),
then join one FIFO *line*. Submits leave the line only from its head, and only
while a window permit is free (``window`` permits, each held until the response)
and the pace allows (``1/throughput`` after the previous submit_sm, and not
before a throttle pause ends). Whoever frees a permit or joins the line *pumps*
it: starts (gives a sequence number and queues the submit_sm of) as many heads
as may go, at once, in line order, and wakes their tasks. A head held back only
by the pace is woken to sleep until its slot and pump again. Starting submits
for others, rather than letting each task take its own turn, keeps the order
exact (permits freed together, by responses that arrived in one read, would
wake their waiters in one scheduler batch, in an order trio leaves open) and
costs no scheduler round per submit. Nothing is reordered by a throttle: the
throttled message goes back to its caller as ``RetryLater`` while still holding
its permit, and the line behind it waits out the pause.

Inbound deliver_sm are answered only when the caller acks the item. The parts of
a multi-part MO are held until the whole message is acked. Trade-off: a part
whose message does not complete within ``ack_timeout`` is answered 0 (so the
SMSC does not time it out and redeliver it endlessly) and kept only in memory by
the assembler (lost if the daemon dies before the other parts arrive, or after
the assembler's max age).

Inbound flow control: at most ``max_unacked`` deliver_sm are *held* (read and
not yet answered: the parts of items handed out and not acked, plus parts
waiting for the rest of their message), counted over the link's live
connections. A deliver_sm read while that many are held waits in the reader
until an answer frees room: the reader reads nothing meanwhile, so TCP pushes
back on the SMSC (enquire_link and unbind behind it wait too). Each such pause
is logged once (``inbound_paused``, then ``inbound_resumed``) and counted. The
inbound channel holds ``max_unacked`` items, so it has room for every held
item; only items of a connection that has since closed (no longer counted,
their answers can no longer be sent) can fill it, and then the reader waits for
the consumer in the same way. Nothing is dropped and nothing is answered by the
link on the caller's behalf except after ``ack_timeout`` (ESME_RX_T_APPN) or
the multi-part trade-off above. A wait ends when its connection closes (the
session's cancel scope): the deliver_sm is then never answered, and the SMSC
delivers it again. A paused reader cannot see the peer close; the first write
after that (an ack, at the latest the ESME_RX_T_APPN at ``ack_timeout``) fails
and closes the session. So a pause lasts at most about ``ack_timeout`` unless
the consumer stops reading the channel altogether.

Time is read only through ``trio.current_time()`` and handed to the core.
"""

from __future__ import annotations

import collections
import contextlib
import math
import random
from typing import TYPE_CHECKING, assert_never

import attrs
import structlog
import trio

from smscd.link._config import BindKind, LinkConfig
from smscd.link._mask import mask_msisdn
from smscd.link._types import (
    Accepted,
    InboundItem,
    InboundMo,
    InboundReceipt,
    LinkStatistics,
    OutboundSm,
    Rejected,
    RetryLater,
    SubmitResult,
)
from smscd.smpp import (
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    Connection,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    MessageAssembler,
    NeedData,
    PduRejected,
    ReceiptError,
    RemoteProtocolError,
    Role,
    SessionState,
    SmppError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    encode_gsm7,
    is_receipt,
    is_temporary,
    is_throttling,
    message_id_keys,
    parse_receipt,
    response_for,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from smscd.smpp import Event, Request, Response

__all__ = ["Link", "ack_all"]


#: Bytes asked of receive_some() at a time.
_RECEIVE_SIZE = 65536
#: How long the assembler keeps the parts of an incomplete multi-part MO.
_ASSEMBLY_MAX_AGE = 60.0
_WRITE_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)
_SUBMIT_STATES = (SessionState.BOUND_TX, SessionState.BOUND_TRX)


def _status_name(status: int) -> str:
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


@attrs.define(eq=False)
class _Outgoing:
    """One event (or raw reply bytes) waiting to be written."""

    payload: Event | bytes
    #: Taken by a flush: encoded (or refused) and handed to send_all.
    taken: bool = False
    #: The flush that took it is over (written, refused, or failed: see error).
    done: bool = False
    error: BaseException | None = None


@attrs.define(eq=False)
class _Turn:
    """A submit in the line (see the module docstring)."""

    message: OutboundSm
    short_message: bytes
    #: Set when the submit was started, or when the head must wait for its slot.
    wake: trio.Event = attrs.Factory(trio.Event)
    #: Once started (holding a window permit): its session and pending slot, or
    #: the RetryLater it ends with.
    started: tuple[_Session, _Pending] | RetryLater | None = None


@attrs.define(eq=False)
class _Pending:
    """A request sent on a session, waiting for its response."""

    request: Request
    outgoing: _Outgoing | None = None
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
class _HeldPart:
    """A part of an incomplete multi-part MO whose deliver_sm_resp is held back."""

    deliver: DeliverSm
    deadline: float


@attrs.define(eq=False)
class _Ack:
    """The ack handle behind one inbound item: answers its deliver_sm(s) once."""

    link: Link
    session: _Session
    parts: tuple[DeliverSm, ...]
    deadline: float
    done: bool = False
    timed_out: bool = False

    async def ack(self, status: int) -> None:
        queued = self.queue(status)
        if queued:
            await self.session.wait_written(queued[-1])
            self.check_written(queued, status)

    def queue(self, status: int) -> list[_Outgoing]:
        """Mark the item answered and queue its deliver_sm_resp(s); the queued
        writes (none if already answered or the session is gone)."""
        if self.done:
            if self.timed_out:
                self.link.log.info(
                    "deliver_sm_ack_late", status=_status_name(status), parts=len(self.parts)
                )
            return []
        self.done = True
        session = self.session
        session.held.discard(self)
        self.link._answered(session, len(self.parts))
        if not session.held:
            self.link._notify()  # stop() may be waiting for the last ack
        if session.closed:
            self._dropped(self.parts[0], status)
            return []
        return [session.enqueue(response_for(part, command_status=status)) for part in self.parts]

    def check_written(self, queued: list[_Outgoing], status: int) -> None:
        """Log the first response that did not go out (once its flush is over)."""
        for part, item in zip(self.parts, queued, strict=True):
            if item.error is not None:
                self._dropped(part, status)
                return

    def _dropped(self, part: DeliverSm, status: int) -> None:
        self.link.log.warning(
            "deliver_sm_resp_dropped", sequence=part.sequence, status=_status_name(status)
        )


async def ack_all(items: Iterable[InboundItem], status: int = 0) -> None:
    """Answer many inbound items with ``status`` at once: every response is
    queued first, then each session writes its share in one flush. Equivalent
    to ``item.ack(status)`` on each (idempotent, never raises for a lost
    connection), without a task and a write per item."""
    handles: list[_Ack] = []
    for item in items:
        handle = item._ack_handle
        if isinstance(handle, _Ack):
            handles.append(handle)
        else:
            await handle.ack(status)
    await _answer_all(handles, status)


async def _answer_all(handles: Iterable[_Ack], status: int) -> None:
    """Queue the answers of every handle, then wait once per session."""
    batch: list[tuple[_Ack, list[_Outgoing]]] = []
    for handle in handles:
        queued = handle.queue(status)
        if queued:
            batch.append((handle, queued))
    last: dict[_Session, _Outgoing] = {}
    for handle, queued in batch:
        last[handle.session] = queued[-1]
    for session, outgoing in last.items():
        await session.wait_written(outgoing)
    for handle, queued in batch:
        handle.check_written(queued, status)


class _Session:
    """One TCP connection, its SMPP core, and what is waiting on it."""

    def __init__(
        self, *, config: LinkConfig, mode: BindMode, bind_id: str, stream: trio.SocketStream
    ) -> None:
        self.mode = mode
        self.bind_id = bind_id
        self.stream = stream
        self.conn = Connection(Role.ESME, response_timeout=config.response_timeout)
        self.write_timeout = config.response_timeout
        self.outgoing: list[_Outgoing] = []
        #: A flush is writing (one at a time); its end sets ``flushed``.
        self.flushing = False
        self.flushed = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.pending: dict[int, _Pending] = {}
        self.enquire: _Pending | None = None
        self.last_received = trio.current_time()
        self.bound = False
        self.closed = False
        self.close_reason = ""
        self.bind_status: int | None = None
        #: trio.current_time() of the bind_resp with status 0.
        self.bound_at: float | None = None
        #: Parts of incomplete multi-part MOs, by deliver_sm sequence.
        self.waiting_parts: dict[int, _HeldPart] = {}
        #: Inbound items handed out and not acked yet.
        self.held: set[_Ack] = set()
        #: deliver_sm read and not answered: the parts of ``held`` plus
        #: ``waiting_parts`` (inbound flow control, module docstring).
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

    # Writing (group commit). A writer appends its event to ``outgoing``; if no
    # flush is running it flushes itself, else it waits for the running one to
    # end. A flush encodes *every* queued event, in queue order, with
    # ``conn.send`` and writes them with one ``send_all``. Under load that is one
    # syscall for many PDUs, and the end of a flush wakes all its waiters at once
    # (the first of those still queued flushes the next batch); the core's state
    # still changes in wire order, one flush at a time. A writer cancelled before
    # its event was taken removes it, so nothing half-committed is left behind.
    # If ``send_all`` raises (Cancelled included) the core is told
    # (``send_failed``), the session is closed and every event of that batch fails.

    def enqueue(self, event: Event | bytes) -> _Outgoing:
        item = _Outgoing(payload=event)
        self.outgoing.append(item)
        return item

    async def written(self, item: _Outgoing) -> None:
        """Wait until ``item`` is on the wire. Raises SmppError (the core refused
        it: nothing written) or a trio resource error (the session is closed)."""
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            while not item.done:
                if self.flushing:
                    await self.flushed.wait()
                    continue
                self.flushing = True
                try:
                    # One pass of the scheduler first: the others writing in
                    # this pass (acks of one batch, started submits) join in.
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
        if item.error is not None:
            raise item.error

    async def wait_written(self, item: _Outgoing) -> None:
        """Like ``written``, but the outcome is left in ``item.error`` (Cancelled
        still propagates)."""
        try:
            await self.written(item)
        except (SmppError, *_WRITE_ERRORS):
            pass

    async def _flush(self) -> None:
        batch, self.outgoing = self.outgoing, []
        now = trio.current_time()
        chunks: list[bytes] = []
        for item in batch:
            item.taken = True
            if isinstance(item.payload, bytes):
                chunks.append(item.payload)
                continue
            try:
                chunks.append(self.conn.send(item.payload, now=now))
            except SmppError as exc:
                item.error = exc
        try:
            if not chunks:
                return
            # The batch belongs to every writer in it, so the caller that happens
            # to flush it may not abandon it halfway by being cancelled; a write
            # that takes a whole response_timeout means a dead peer.
            with trio.move_on_after(self.write_timeout, shield=True) as scope:
                await self.stream.send_all(b"".join(chunks))
            if scope.cancelled_caught:
                raise trio.BrokenResourceError("write timed out")
        except BaseException:
            self.conn.send_failed()
            self.close("write_failed")
            for item in batch:
                if item.error is None:
                    item.error = trio.BrokenResourceError("the write failed")
            raise
        finally:
            for item in batch:
                item.done = True

    async def send(self, event: Event | bytes) -> None:
        """Write one event (or raw bytes) now; see ``written`` for errors."""
        await self.written(self.enqueue(event))

    async def request(self, request: Request) -> _Pending:
        """Send a request; the returned slot is resolved by the reader or failed."""
        pending = self.start_request(request)
        await self.finish_request(pending)
        return pending

    def start_request(self, request: Request) -> _Pending:
        """Queue a request (its place on the wire is fixed from now on)."""
        pending = _Pending(request=request)
        pending.outgoing = self.enqueue(request)
        self.pending[request.sequence] = pending
        return pending

    async def finish_request(self, pending: _Pending) -> None:
        assert pending.outgoing is not None
        try:
            await self.written(pending.outgoing)
        except BaseException:
            if self.pending.get(pending.request.sequence) is pending:
                del self.pending[pending.request.sequence]
            raise

    async def reply(self, response: Response) -> bool:
        """Send a response; False if the session can no longer carry it."""
        if self.closed:
            return False
        try:
            await self.send(response)
        except (SmppError, *_WRITE_ERRORS):
            return False
        return True

    def fail_all(self, reason: str) -> None:
        for pending in self.pending.values():
            pending.fail(reason)
        self.pending.clear()


@attrs.define
class _Counters:
    submitted: int = 0
    accepted: int = 0
    retry_later: int = 0
    rejected: int = 0
    lost_in_flight: int = 0
    reconnects: int = 0
    #: Binds lost (bound, then not) other than by stop().
    disconnects: int = 0
    throttled: int = 0
    mo_received: int = 0
    receipts_received: int = 0
    inbound_paused: int = 0


class Link:
    """The driver of one carrier bind (see the module docstring)."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        # Lazy: follows whatever configuration the daemon sets later.
        self.log = structlog.get_logger(carrier=config.name, system_id=config.system_id)
        self._modes: tuple[BindMode, ...] = (
            (BindMode.TRANSCEIVER,)
            if config.bind is BindKind.TRANSCEIVER
            else (BindMode.TRANSMITTER, BindMode.RECEIVER)
        )
        self._tx_mode = self._modes[0]
        self._mode_state: dict[BindMode, str] = dict.fromkeys(self._modes, "idle")
        self._sessions: dict[BindMode, _Session] = {}
        self._state_changed = trio.Event()
        #: Window permits not held by a started submit.
        self._free = config.window
        self._line: collections.deque[_Turn] = collections.deque()
        self._interval = 1.0 / config.throughput if config.throughput > 0 else 0.0
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        self._in_flight = 0
        self._drained = trio.Event()
        self._drained.set()
        self._counters = _Counters()
        #: Whether the link was bound at the last state change, and since when
        #: (trio.current_time(), set once run() starts).
        self._was_bound = False
        self._bound_changed_at: float | None = None
        #: When the last throttle pause began.
        self._throttled_at: float | None = None
        self._assembler = MessageAssembler()
        self._inbound_send, self._inbound_receive = trio.open_memory_channel[InboundItem](
            config.max_unacked
        )
        #: Set (and replaced) when an answer frees room while the reader waits.
        self._inbound_room = trio.Event()
        #: Readers waiting for room (one per receiving connection at most).
        self._inbound_waiting = 0
        self._bind_counter = 0
        self._last_failure: dict[BindMode, str | None] = dict.fromkeys(self._modes)
        self._started = False
        self._stopping = False
        self._stopped = trio.Event()
        self._run_scope: trio.CancelScope | None = None

    # --- public API ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, bind, serve and reconnect until :meth:`stop`.

        ``task_status.started()`` is called as soon as the supervisors run, not
        after the first bind, so a daemon starts even while a carrier is down.
        """
        if self._started:
            raise RuntimeError("Link.run() may be called only once")
        self._started = True
        self._bound_changed_at = trio.current_time()
        try:
            async with self._inbound_send:
                with trio.CancelScope() as scope:
                    self._run_scope = scope
                    if self._stopping:
                        task_status.started()
                        return
                    async with trio.open_nursery() as nursery:
                        for mode in self._modes:
                            nursery.start_soon(self._supervise, mode)
                        task_status.started()
        finally:
            for mode in self._modes:
                self._mode_state[mode] = "stopped"
            self._notify()
            self._stopped.set()

    async def wait_bound(self) -> None:
        """Return once every connection of the link is bound."""
        while not self._is_bound():
            await self._state_changed.wait()

    def inbound(self) -> trio.MemoryReceiveChannel[InboundItem]:
        """The channel of MOs and receipts (closed after run). It holds at most
        ``max_unacked`` items; the reader waits, rather than drop one, when the
        caller holds that many deliver_sm unanswered (module docstring)."""
        return self._inbound_receive

    async def submit(self, message: OutboundSm) -> SubmitResult:
        """Submit one MT and return what became of it.

        Never raises for network or SMSC trouble (that is ``RetryLater``). Raises
        ``smscd.smpp.LocalProtocolError`` for a message that cannot be encoded at
        all (text outside GSM 03.38, over 254 octets, address too long): a bug in
        the caller, not worth retrying.
        """
        short_message = encode_gsm7(message.text)
        self._counters.submitted += 1
        result = await self._submit(message, short_message)
        match result:
            case Accepted():
                self._counters.accepted += 1
            case RetryLater():
                self._counters.retry_later += 1
            case Rejected():
                self._counters.rejected += 1
            case _:
                assert_never(result)
        return result

    async def stop(self) -> None:
        """Stop gracefully within ``stop_timeout``: refuse new submits, wait for
        the outstanding responses, unbind, close."""
        if self._stopping:
            if self._started:
                with trio.move_on_after(self.config.stop_timeout):
                    await self._stopped.wait()
            return
        self._stopping = True
        self._notify()
        start = trio.current_time()
        deadline = start + self.config.stop_timeout
        self.log.info("link_stopping", in_flight=self._in_flight)
        with trio.move_on_at(start + self.config.stop_timeout * 0.5):
            # Outstanding submits get their answers, and inbound items being made
            # durable get their acks out, before the unbind.
            await self._drained.wait()
            while any(session.held for session in self._sessions.values()):
                await self._state_changed.wait()
        with trio.move_on_at(start + self.config.stop_timeout * 0.9, shield=True):
            async with trio.open_nursery() as nursery:
                for session in list(self._sessions.values()):
                    nursery.start_soon(self._unbind, session)
        for session in list(self._sessions.values()):
            if not session.closed:
                # The unbind did not complete in time: drop the connection.
                session.close("stopped")
                await trio.aclose_forcefully(session.stream)
        if self._run_scope is not None:
            self._run_scope.cancel()
        if self._started:
            with trio.move_on_at(deadline):
                await self._stopped.wait()
        self.log.info("link_stopped")

    def statistics(self) -> LinkStatistics:
        c = self._counters
        now = trio.current_time() if self._bound_changed_at is not None else 0.0
        return LinkStatistics(
            name=self.config.name,
            state=self._state(),
            bound=self._is_bound(),
            state_age=now - self._bound_changed_at if self._bound_changed_at is not None else 0.0,
            in_flight=self._in_flight,
            window=self.config.window,
            throughput=self.config.throughput,
            submitted=c.submitted,
            accepted=c.accepted,
            retry_later=c.retry_later,
            rejected=c.rejected,
            lost_in_flight=c.lost_in_flight,
            reconnects=c.reconnects,
            disconnects=c.disconnects,
            throttled=c.throttled,
            throttled_ago=now - self._throttled_at if self._throttled_at is not None else None,
            mo_received=c.mo_received,
            receipts_received=c.receipts_received,
            inbound_held=self._inbound_held(),
            inbound_paused=c.inbound_paused,
        )

    # --- state --------------------------------------------------------------------

    def _notify(self) -> None:
        self._state_changed.set()
        self._state_changed = trio.Event()
        bound = self._is_bound()
        if bound != self._was_bound:
            self._was_bound = bound
            self._bound_changed_at = trio.current_time()
            if not bound and not self._stopping:
                self._counters.disconnects += 1

    def _is_bound(self) -> bool:
        return all(
            (s := self._sessions.get(mode)) is not None and s.bound and not s.closed
            for mode in self._modes
        )

    def _state(self) -> str:
        if self._stopped.is_set():
            return "stopped"
        if self._stopping:
            return "stopping"
        order = ("idle", "backing_off", "connecting", "binding", "bound")
        return min(self._mode_state.values(), key=order.index)

    def _tx_session(self) -> _Session | None:
        session = self._sessions.get(self._tx_mode)
        if session is None or not session.bound or session.closed:
            return None
        return session

    # --- supervision --------------------------------------------------------------

    async def _supervise(self, mode: BindMode) -> None:
        attempt = 0
        first = True
        while not self._stopping:
            if not first:
                self._counters.reconnects += 1
            first = False
            bound_for = await self._run_session(mode)
            if self._stopping:
                break
            if bound_for is not None and bound_for >= self.config.backoff_max:
                # A bind that lasted: the next trouble is new trouble. One
                # dropped at once keeps backing off, so that an SMSC that
                # accepts binds and then drops them is not hammered.
                attempt = 0
            delay = min(
                self.config.backoff_max, self.config.backoff_initial * 2 ** min(attempt, 32)
            )
            delay *= random.uniform(0.5, 1.0)
            attempt += 1
            self._mode_state[mode] = "backing_off"
            self.log.info("link_reconnecting", mode=mode.value, delay=round(delay, 3))
            await trio.sleep(delay)

    def _note_failure(self, mode: BindMode, key: str, event: str, **fields: object) -> None:
        """Log a connect/bind failure once, and again only when it changes."""
        if self._last_failure[mode] != key:
            self._last_failure[mode] = key
            self.log.warning(event, mode=mode.value, **fields)

    async def _run_session(self, mode: BindMode) -> float | None:
        """One connection from connect to close; returns how long it stayed
        bound (None: it never was)."""
        self._bind_counter += 1
        bind_id = f"{self.config.name}/{mode.value}/{self._bind_counter}"
        structlog.contextvars.bind_contextvars(
            carrier=self.config.name, system_id=self.config.system_id, bind_id=bind_id
        )
        self._mode_state[mode] = "connecting"
        try:
            with trio.fail_after(self.config.connect_timeout):
                stream = await trio.open_tcp_stream(self.config.host, self.config.port)
        except (OSError, trio.TooSlowError) as exc:
            self._note_failure(
                mode,
                f"connect:{type(exc).__name__}",
                "link_connect_failed",
                error=type(exc).__name__,
            )
            return None
        session = _Session(config=self.config, mode=mode, bind_id=bind_id, stream=stream)
        self._sessions[mode] = session
        # Quiet while retrying a failure already reported (logged once, D6).
        log_connected = self.log.info if self._last_failure[mode] is None else self.log.debug
        log_connected("link_connected", mode=mode.value, bind_id=bind_id)
        try:
            with session.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, session)
                    nursery.start_soon(self._timers, session)
                    self._mode_state[mode] = "binding"
                    if await self._bind(session):
                        await trio.sleep_forever()
                    session.close("bind_failed")
        finally:
            was_bound = session.bind_status == 0
            session.close(session.close_reason or "cancelled")
            if self._sessions.get(mode) is session:
                del self._sessions[mode]
            session.fail_all("connection_lost")
            self._notify()
            await trio.aclose_forcefully(stream)
            if self._stopping:
                pass
            elif was_bound:
                self.log.warning("link_disconnected", mode=mode.value, reason=session.close_reason)
            elif session.bind_status is not None:
                name = _status_name(session.bind_status)
                self._note_failure(mode, f"bind:{name}", "bind_failed", status=name)
            else:
                reason = session.close_reason
                self._note_failure(
                    mode, f"bind:{reason}", "bind_failed", status=None, reason=reason
                )
        if session.bound_at is None:
            return None
        return trio.current_time() - session.bound_at

    async def _bind(self, session: _Session) -> bool:
        bind = Bind(
            sequence=session.conn.next_sequence(),
            mode=session.mode,
            system_id=self.config.system_id,
            password=self.config.password,
            system_type=self.config.system_type,
        )
        try:
            pending = await session.request(bind)
        except SmppError as exc:
            self.log.error("bind_not_sent", error=str(exc))
            return False
        except _WRITE_ERRORS:
            return False
        await pending.done.wait()
        response = pending.response
        if response is None:
            return False
        session.bind_status = response.command_status
        if response.command_status != 0 or not isinstance(response, BindResp):
            return False
        session.bound = True
        session.bound_at = trio.current_time()
        self._last_failure[session.mode] = None
        self._mode_state[session.mode] = "bound"
        self.log.info("link_bound", mode=session.mode.value, smsc_system_id=response.system_id)
        self._notify()
        return True

    async def _unbind(self, session: _Session) -> None:
        """Unbind one session (for stop); closes it whatever the outcome."""
        if session.closed:
            return
        try:
            pending = await session.request(Unbind(sequence=session.conn.next_sequence()))
        except (SmppError, *_WRITE_ERRORS):
            return
        await pending.done.wait()
        if isinstance(pending.response, UnbindResp):
            self.log.info("link_unbound", mode=session.mode.value, initiator="esme")
            session.close("stopped")

    # --- the reader -----------------------------------------------------------------

    async def _reader(self, session: _Session) -> None:
        conn = session.conn
        while True:
            try:
                data = await session.stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                session.close("connection_lost")
                return
            session.last_received = trio.current_time()
            try:
                conn.receive_data(data)
                while True:
                    try:
                        event = conn.next_event()
                    except PduRejected as exc:
                        self.log.warning(
                            "pdu_rejected",
                            sequence=exc.sequence,
                            status=_status_name(exc.command_status),
                            error=str(exc),
                        )
                        if exc.reply is not None:
                            try:
                                await session.send(exc.reply)
                            except _WRITE_ERRORS:
                                return
                        continue
                    if isinstance(event, NeedData):
                        break
                    await self._dispatch(session, event)
            except FramingError as exc:
                self.log.warning("framing_error_received", error=str(exc))
                session.close("framing_error")
                return
            except RemoteProtocolError as exc:
                self.log.warning("protocol_error_received", error=str(exc))
                session.close("protocol_error")
                return
            except SmppError:
                # LocalProtocolError: a write failed meanwhile (send_failed), the
                # core refuses further reads; the session is already closing.
                session.close("write_failed")
                return
            if not data:
                session.close("connection_closed")
                return

    async def _dispatch(self, session: _Session, event: Event) -> None:
        match event:
            case (
                BindResp()
                | UnbindResp()
                | EnquireLinkResp()
                | SubmitSmResp()
                | DeliverSmResp()
                | GenericNack()
            ):
                pending = session.pending.pop(event.sequence, None)
                if pending is None:
                    self.log.warning(
                        "response_unmatched",
                        command=type(event).__name__,
                        sequence=event.sequence,
                        status=_status_name(event.command_status),
                    )
                else:
                    pending.resolve(event)
            case EnquireLink():
                await session.reply(response_for(event))
            case Unbind():
                await session.reply(response_for(event))
                self.log.warning("link_unbound", mode=session.mode.value, initiator="smsc")
                session.close("unbound_by_smsc")
            case DeliverSm():
                await self._on_deliver(session, event)
            case Bind() | SubmitSm():
                # Not a request an SMSC may send to an ESME.
                await session.reply(
                    GenericNack(
                        sequence=event.sequence, command_status=CommandStatus.ESME_RINVCMDID
                    )
                )
            case _:
                assert_never(event)

    # --- inbound --------------------------------------------------------------------

    def _inbound_held(self) -> int:
        """deliver_sm held (read, not answered) on the live connections."""
        return sum(session.unanswered for session in self._sessions.values())

    def _answered(self, session: _Session, count: int) -> None:
        """``count`` held deliver_sm of ``session`` were answered (or given up)."""
        session.unanswered -= count
        if self._inbound_waiting:
            self._inbound_room.set()
            self._inbound_room = trio.Event()

    @contextlib.contextmanager
    def _inbound_pause(self, reason: str) -> Iterator[None]:
        """Log and count one pause of the reader around the wait it wraps (not
        resumed if the wait ends by the connection closing)."""
        self._counters.inbound_paused += 1
        start = trio.current_time()
        self.log.warning(
            "inbound_paused",
            reason=reason,
            held=self._inbound_held(),
            max_unacked=self.config.max_unacked,
        )
        yield
        self.log.info(
            "inbound_resumed", reason=reason, paused_for=round(trio.current_time() - start, 3)
        )

    async def _wait_inbound_room(self) -> None:
        """Return once fewer than ``max_unacked`` deliver_sm are held."""
        if self._inbound_held() < self.config.max_unacked:
            return
        with self._inbound_pause("max_unacked"):
            while self._inbound_held() >= self.config.max_unacked:
                self._inbound_waiting += 1
                try:
                    await self._inbound_room.wait()
                finally:
                    self._inbound_waiting -= 1

    async def _on_deliver(self, session: _Session, deliver: DeliverSm) -> None:
        await self._wait_inbound_room()
        now = trio.current_time()
        item: InboundItem
        if is_receipt(deliver):
            try:
                receipt = parse_receipt(deliver)
            except ReceiptError as exc:
                self.log.warning(
                    "receipt_unparsed",
                    sequence=deliver.sequence,
                    msisdn=mask_msisdn(deliver.source_addr),
                    error=str(exc),
                )
                await session.reply(response_for(deliver))
                return
            self._counters.receipts_received += 1
            ack = _Ack(link=self, session=session, parts=(deliver,), deadline=math.inf)
            item = InboundReceipt(
                carrier=self.config.name,
                receipt=receipt,
                id_keys=message_id_keys(receipt.message_id, self.config.message_id_format),
                source_addr=deliver.source_addr,
                destination_addr=deliver.destination_addr,
                ack_handle=ack,
            )
            self.log.debug("receipt_received", stat=receipt.stat)
        else:
            message = self._assembler.feed(deliver, now=now, gsm7_default=self.config.gsm7_default)
            if message is None:
                deadline = now + self.config.ack_timeout
                session.waiting_parts[deliver.sequence] = _HeldPart(deliver, deadline)
                session.unanswered += 1
                return
            parts = [deliver]
            for sequence in message.sequences:
                part = session.waiting_parts.get(sequence)
                if (
                    sequence != deliver.sequence
                    and part is not None
                    and part.deliver.source_addr == deliver.source_addr
                ):
                    del session.waiting_parts[sequence]
                    parts.append(part.deliver)
            self._counters.mo_received += 1
            ack = _Ack(link=self, session=session, parts=tuple(parts), deadline=math.inf)
            item = InboundMo(
                carrier=self.config.name,
                source_addr=message.source_addr,
                source_addr_ton=message.source_addr_ton,
                source_addr_npi=message.source_addr_npi,
                destination_addr=message.destination_addr,
                text=message.text,
                data_coding=message.data_coding,
                parts=len(message.sequences),
                ack_handle=ack,
            )
            self.log.info(
                "mo_received", msisdn=mask_msisdn(message.source_addr), parts=len(message.sequences)
            )
        # The parts gathered from waiting_parts are counted already.
        session.unanswered += 1
        try:
            try:
                self._inbound_send.send_nowait(item)
            except trio.WouldBlock:
                # Full of items of a closed connection (module docstring).
                with self._inbound_pause("channel_full"):
                    await self._inbound_send.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # Held all the same: answered ESME_RX_T_APPN at ack_timeout.
            self.log.warning("inbound_channel_closed", sequence=deliver.sequence)
        except BaseException:
            # Cancelled (the connection closed): never handed out, never answered.
            ack.done = True
            self._answered(session, len(ack.parts))
            raise
        # The caller's ack_timeout runs from when the item is handed out (the
        # caller may have acked it already, while the reader waited to send it).
        if not ack.done:
            ack.deadline = trio.current_time() + self.config.ack_timeout
            session.held.add(ack)

    # --- timers ---------------------------------------------------------------------

    async def _timers(self, session: _Session) -> None:
        config = self.config
        tick = min(0.25, config.response_timeout / 8, config.ack_timeout / 8)
        tick = min(tick, config.enquire_link_interval / 8)
        conn = session.conn
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            expired = conn.expired_requests(now)
            if expired:
                for request in expired:
                    pending = session.pending.pop(request.sequence, None)
                    if pending is not None:
                        pending.fail("timeout")
                    if isinstance(request, EnquireLink):
                        self.log.warning("enquire_link_timed_out", sequence=request.sequence)
                    elif isinstance(request, Bind):
                        pass  # reported (once per streak) as bind_failed by the supervisor
                    else:
                        self.log.warning(
                            "request_timed_out",
                            command=type(request).__name__,
                            sequence=request.sequence,
                        )
                session.close("response_timeout")
                return
            late = [a for a in session.held if a.deadline <= now]
            for ack in late:
                self.log.warning("deliver_sm_ack_timed_out", parts=len(ack.parts))
                ack.timed_out = True
            if late:
                await _answer_all(late, CommandStatus.ESME_RX_T_APPN)
            overdue = [
                (sequence, part)
                for sequence, part in session.waiting_parts.items()
                if part.deadline <= now
            ]
            if overdue:
                # Trade-off (module docstring): answer 0, keep it in the assembler.
                # Out of waiting_parts before the first await: the reader, woken by
                # the room this frees, may complete their message meanwhile.
                for sequence, _part in overdue:
                    del session.waiting_parts[sequence]
                self._answered(session, len(overdue))
                for sequence, part in overdue:
                    self.log.info("mo_part_answered_incomplete", sequence=sequence)
                    await session.reply(response_for(part.deliver))
            for partial in self._assembler.expire(
                now, max_age=_ASSEMBLY_MAX_AGE, gsm7_default=config.gsm7_default
            ):
                self.log.warning(
                    "mo_parts_expired",
                    msisdn=mask_msisdn(partial.source_addr),
                    received=len(partial.received),
                    total=partial.total,
                )
            enquire = session.enquire
            if (
                session.bound
                and (enquire is None or enquire.done.is_set())
                and now - session.last_received >= config.enquire_link_interval
            ):
                try:
                    session.enquire = await session.request(
                        EnquireLink(sequence=conn.next_sequence())
                    )
                except (SmppError, *_WRITE_ERRORS):
                    session.close("write_failed")
                    return

    # --- submit ---------------------------------------------------------------------

    async def _wait_for_tx(self) -> _Session | None:
        session = self._tx_session()
        if session is not None:
            return session  # the hot path: no cancel scope
        with trio.move_on_after(self.config.response_timeout):
            while (session := self._tx_session()) is None and not self._stopping:
                await self._state_changed.wait()
            return session
        return None

    async def _submit(self, message: OutboundSm, short_message: bytes) -> SubmitResult:
        if self._stopping:
            return RetryLater(status=None, reason="stopping")
        if await self._wait_for_tx() is None:
            return RetryLater(status=None, reason="stopping" if self._stopping else "not_bound")
        turn = _Turn(message=message, short_message=short_message)
        self._line.append(turn)
        try:
            self._pump()
            while turn.started is None:
                if self._line[0] is turn and self._free > 0:
                    # The head, held back only by the pace: wait for the slot.
                    await trio.sleep_until(max(self._next_slot, self._paused_until))
                    self._pump()
                else:
                    await turn.wake.wait()
                    turn.wake = trio.Event()
        except BaseException:
            if turn.started is None:
                head = self._line[0] is turn
                self._line.remove(turn)
                if head:
                    self._pump()
            else:
                self._abandon(turn.started)
            raise
        started = turn.started
        try:
            if isinstance(started, RetryLater):
                return started
            return await self._finish_submit(message, *started)
        finally:
            self._free += 1
            self._pump()

    def _pump(self) -> None:
        """Start submits from the head of the line while a permit is free and the
        pace allows; wake the head when only the pace holds it back."""
        line = self._line
        if not line or self._free <= 0:
            return
        now = trio.current_time()
        while line and self._free > 0:
            turn = line[0]
            if max(self._next_slot, self._paused_until) > now:
                turn.wake.set()
                return
            line.popleft()
            self._free -= 1
            self._next_slot = now + self._interval
            turn.started = self._start_submit(turn)
            turn.wake.set()

    def _start_submit(self, turn: _Turn) -> tuple[_Session, _Pending] | RetryLater:
        """Give the submit_sm its sequence number and its place on the wire."""
        session = self._tx_session()
        if self._stopping or session is None:
            reason = "stopping" if self._stopping else "not_bound"
            return RetryLater(status=None, reason=reason)
        message = turn.message
        submit = SubmitSm(
            sequence=session.conn.next_sequence(),
            source_addr_ton=message.source_addr_ton,
            source_addr_npi=message.source_addr_npi,
            source_addr=message.source_addr,
            dest_addr_ton=message.dest_addr_ton,
            dest_addr_npi=message.dest_addr_npi,
            destination_addr=message.destination_addr,
            registered_delivery=message.registered_delivery,
            data_coding=0,
            short_message=turn.short_message,
        )
        pending = session.start_request(submit)
        if self._in_flight == 0:
            self._drained = trio.Event()
        self._in_flight += 1
        return session, pending

    def _abandon(self, started: tuple[_Session, _Pending] | RetryLater) -> None:
        """A started submit whose task was cancelled before it took over: undo
        what the start did (as a write cancelled before its flush would)."""
        if not isinstance(started, RetryLater):
            session, pending = started
            item = pending.outgoing
            if item is not None and not item.taken:
                session.outgoing.remove(item)
            if session.pending.get(pending.request.sequence) is pending:
                del session.pending[pending.request.sequence]
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()
        self._free += 1
        self._pump()

    async def _finish_submit(
        self, message: OutboundSm, session: _Session, pending: _Pending
    ) -> SubmitResult:
        """Write the started submit_sm (with whatever else is queued) and wait for
        its response."""
        try:
            try:
                await session.finish_request(pending)
            except SmppError:
                if session.closed or session.conn.state not in _SUBMIT_STATES:
                    return RetryLater(status=None, reason="not_bound")
                raise  # still bound: the message itself cannot be encoded
            except _WRITE_ERRORS:
                # Part of it may have reached the SMSC.
                return self._lost(message, pending.request.sequence, "connection_lost")
            await pending.done.wait()
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()
        # Still holding the permit: a throttle pause is in force before the
        # next submit is started.
        return self._classify(message, pending)

    def _lost(self, message: OutboundSm, sequence: int, reason: str) -> RetryLater:
        self._counters.lost_in_flight += 1
        self.log.warning(
            "submit_sm_lost",
            reason=reason,
            sequence=sequence,
            msisdn=mask_msisdn(message.destination_addr),
        )
        return RetryLater(status=None, reason=reason)

    def _classify(self, message: OutboundSm, pending: _Pending) -> SubmitResult:
        response = pending.response
        if response is None:
            return self._lost(
                message, pending.request.sequence, pending.failure or "connection_lost"
            )
        status = response.command_status
        if status == 0 and isinstance(response, SubmitSmResp):
            return Accepted(
                message_id=response.message_id,
                id_keys=message_id_keys(response.message_id, self.config.message_id_format),
            )
        if status == 0:
            # A generic_nack (or odd response) that claims success: unknown outcome.
            return RetryLater(status=None, reason="temporary_status")
        if is_throttling(status):
            self._throttle(status)
            return RetryLater(status=status, reason="throttled")
        if is_temporary(status):
            return RetryLater(status=status, reason="temporary_status")
        return Rejected(status=status)

    def _throttle(self, status: int) -> None:
        now = trio.current_time()
        self._counters.throttled += 1
        self._throttled_at = now
        if self._paused_until <= now:
            self.log.warning(
                "link_throttled", status=_status_name(status), pause=self.config.throttle_pause
            )
        self._paused_until = max(self._paused_until, now + self.config.throttle_pause)
