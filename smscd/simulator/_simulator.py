"""An SMSC that speaks real SMPP 3.4 over TCP, for tests and demos.

Theory of operation
-------------------
``open_simulator`` opens one nursery that owns everything: the SMPP listener, the
optional control listener, one reader task per TCP connection, delayed responses and
scheduled receipts. Leaving the ``async with`` cancels the nursery and so closes
every connection.

Each connection is a ``_Session``: a ``smscd.smpp.Connection`` in the SMSC role (it
decides which PDU is legal in which bind state and answers the rest), one reader task
that owns ``receive_some()`` and handles every inbound PDU in order, and one queue
through which every write goes. Writes are group-committed: whoever writes while no
flush runs becomes the flusher and, after one pass of the scheduler (so the others
writing in that pass join in), encodes the whole queue with ``Connection.send`` and
writes it with one ``send_all``; the others wait for that flush to end. So the
core's idea of the order is the order on the wire, one flush at a time. The reader
does not wait for its own answers (submit_sm_resp, enquire_link_resp): it queues
them and writes them together once it has handled everything one read brought in.
An SMSC stands in for a machine of its own; this keeps its per-PDU cost (and the
syscalls the ESME must make to read it) low on a machine the ESME shares.

Requests the SMSC itself sends (deliver_sm, enquire_link, unbind, an unknown command)
park a ``_Pending`` slot keyed by sequence number; the reader fills it when the
response arrives, or with ``None`` when the connection dies. Nothing here waits on a
timer except where a method says so.

Fault switches are plain attributes read by the reader at the moment a PDU is
handled, so they apply to live and future sessions alike.

Receipts are one task each: sleep ``receipt_delay``, wait for a bound receiver of the
same system_id, deliver, and try again (bounded) when the connection drops before the
deliver_sm_resp or the ESME answers with a temporary error.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hmac
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Final, assert_never

import attrs
import trio

from smscd.simulator._config import SimulatorConfig
from smscd.simulator._control import serve_control_connection
from smscd.simulator._errors import NoReceiverError, SimulatorError
from smscd.simulator._receipt import ReceiptSpec, build_receipt, format_message_id
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
    Event,
    GenericNack,
    LocalProtocolError,
    NeedData,
    PduRejected,
    RemoteProtocolError,
    Response,
    Role,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_short_message,
    encode_gsm7,
)

__all__ = [
    "NoReceiverError",
    "SessionInfo",
    "Simulator",
    "SimulatorError",
    "SimulatorEventHandler",
    "SubmittedSm",
    "open_simulator",
    "same_number",
]

#: The system_id the SMSC names itself with in bind responses.
SMSC_SYSTEM_ID: Final = "smscsim"
#: How many deliver_sm the SMSC keeps unanswered on one bind (the default of
#: ``SimulatorConfig.deliver_window``).
DELIVER_WINDOW: Final = 10
#: How long SMSC-initiated requests (unbind, enquire_link, unknown command) wait.
REQUEST_TIMEOUT: Final = 5.0
#: Delivery attempts per receipt (connection lost or temporary error each count one).
RECEIPT_ATTEMPTS: Final = 5
#: deliver_sm_resp statuses after which a real SMSC redelivers later.
_TEMPORARY_STATUSES: Final = frozenset(
    {CommandStatus.ESME_RX_T_APPN, CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL}
)
_RECEIVE_SIZE: Final = 65536
_ESM_UDHI: Final = 0x40
_TAG_MESSAGE_PAYLOAD: Final = 0x0424
_GENERIC_NACK_ID: Final = 0x80000000
_MAX_SHORT_MESSAGE: Final = 254
_RECEIVING_MODES: Final = frozenset({BindMode.RECEIVER, BindMode.TRANSCEIVER})

#: ``on_event(name, fields)``: one call per thing worth telling a human (see the CLI).
SimulatorEventHandler = Callable[[str, Mapping[str, object]], None]


@attrs.frozen(kw_only=True)
class SubmittedSm:
    """One submit_sm the SMSC accepted."""

    event: SubmitSm
    message_id: str
    #: short_message (or message_payload) decoded per data_coding, UDH removed.
    text: str
    #: ``trio.current_time()`` when the PDU was read.
    received_at: float
    session_id: int


@attrs.frozen(kw_only=True)
class SessionInfo:
    """One bound session as seen from the SMSC."""

    id: int
    mode: BindMode
    system_id: str


class _HeaderTap:
    """Watches PDU headers go by, to see generic_nacks to raw PDUs we sent.

    The core only matches responses to requests it sent itself, so the answer to a
    hand-made PDU (``send_unknown_command``) reaches us as a PduRejected without its
    status. The tap follows the framing (16-byte header, skip the body) and reports
    the (command_id, command_status, sequence) of each PDU while someone listens.
    """

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
class _Outgoing:
    """One event (or raw bytes) in a session's write queue."""

    payload: Event | bytes
    #: Taken by a flush (encoded or refused, and handed to send_all).
    taken: bool = False
    #: The flush that took it is over; ``written`` says whether it reached the wire.
    done: bool = False
    written: bool = False


@attrs.define
class _Pending:
    """The slot a request of ours waits in for its response."""

    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None

    def resolve(self, response: Response | None) -> None:
        if not self.done.is_set():
            self.response = response
            self.done.set()


class _Session:
    def __init__(
        self, session_id: int, stream: trio.SocketStream, *, deliver_window: int = DELIVER_WINDOW
    ) -> None:
        self.id = session_id
        self.stream = stream
        self.conn = Connection(Role.SMSC)
        self.outgoing: list[_Outgoing] = []
        #: A flush is running (one at a time); its end sets ``flushed``.
        self.flushing = False
        self.flushed = trio.Event()
        self.deliver_window = trio.Semaphore(deliver_window)
        self.mode: BindMode | None = None
        self.system_id = ""
        self.pending: dict[int, _Pending] = {}
        #: Sequences of hand-made PDUs waiting for their generic_nack.
        self.raw_pending: dict[int, _Pending] = {}
        self.tap = _HeaderTap()
        self.outstanding_submits = 0
        self.closed = False

    @property
    def receives(self) -> bool:
        return not self.closed and self.mode in _RECEIVING_MODES

    def info(self) -> SessionInfo | None:
        if self.closed or self.mode is None:
            return None
        return SessionInfo(id=self.id, mode=self.mode, system_id=self.system_id)


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


def _submit_text(event: SubmitSm) -> str:
    payload = event.short_message
    if not payload:
        for tlv in event.tlvs:
            if tlv.tag == _TAG_MESSAGE_PAYLOAD:
                payload = tlv.value
                break
    if event.esm_class & _ESM_UDHI and payload:
        payload = payload[1 + payload[0] :]
    return decode_short_message(event.data_coding, payload)


def _encode_text(text: str, data_coding: int) -> bytes:
    if data_coding == 0:
        try:
            return encode_gsm7(text)
        except LocalProtocolError as exc:
            raise ValueError(f"inject_mo with data_coding 0: {exc}") from exc
    if data_coding == 8:
        return text.encode("utf-16-be")
    if data_coding in (1, 3):
        return text.encode("latin-1")
    raise ValueError(f"inject_mo cannot encode data_coding {data_coding:#04x}")


def _split(text: str, parts: int) -> list[str]:
    size = -(-len(text) // parts)
    return [text[i * size : (i + 1) * size] for i in range(parts)]


def same_number(a: str, b: str) -> bool:
    """Whether two renderings of a phone number are the same subscriber: national
    (``0...``) and international (``84...``, ``+84...``) forms compare equal."""
    digits_a = "".join(c for c in a if c.isdigit())
    digits_b = "".join(c for c in b if c.isdigit())
    if len(digits_a) >= 9 and len(digits_b) >= 9:
        return digits_a[-9:] == digits_b[-9:]
    return digits_a == digits_b


def _now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


class Simulator:
    """A running simulated SMSC; get one from :func:`open_simulator`.

    Read-only for callers: ``port``, ``control_port``, ``config``, ``submitted``,
    ``deliver_responses``, ``generic_nacks_received``, ``max_outstanding_seen``,
    ``unbinds_received``, ``enquire_links_received``, ``unbind_responses_received``,
    ``sessions``. Everything else is a method.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        nursery: trio.Nursery,
        on_event: SimulatorEventHandler | None,
    ) -> None:
        self.config = config
        self.port = 0
        self.control_port: int | None = None
        #: Every submit_sm accepted, in arrival order.
        self.submitted: list[SubmittedSm] = []
        #: command_status of every answer the ESME gave to a deliver_sm (MO or receipt).
        self.deliver_responses: list[int] = []
        #: command_status of every generic_nack the ESME sent (e.g. to an unknown command).
        self.generic_nacks_received: list[int] = []
        #: The most submit_sm one session had received and not yet answered at one time.
        self.max_outstanding_seen = 0
        self.unbinds_received = 0
        self.enquire_links_received = 0
        #: SMSC-initiated unbinds the ESME answered.
        self.unbind_responses_received = 0
        self._nursery = nursery
        self._on_event = on_event
        self._sessions: dict[int, _Session] = {}
        self._next_session_id = 1
        self._next_message_number = random.randrange(0x10000000, 0x40000000)
        # Fault switches.
        self._throttle_remaining = 0
        self._throttle_status: int = CommandStatus.ESME_RTHROTTLED
        self._response_delay = 0.0
        self._black_hole = False
        self._no_response_on_submit = False
        self._generic_nack: int | None = None
        self._enquire_link_silent = False
        self._unbind_silent = False
        # Wake-ups: anything changed / a session bound or closed.
        self._changed = trio.Event()
        self._bound_changed = trio.Event()

    # --- observation -------------------------------------------------------------

    @property
    def sessions(self) -> list[SessionInfo]:
        """The bound sessions (a TX+RX pair is two)."""
        infos = (session.info() for session in self._sessions.values())
        return [info for info in infos if info is not None]

    async def wait_bound(self, n: int = 1) -> list[SessionInfo]:
        """Wait until at least ``n`` sessions are bound; return them."""
        while len(self.sessions) < n:
            await self._bound_changed.wait()
        return self.sessions

    async def wait_submitted(self, n: int) -> list[SubmittedSm]:
        """Wait until at least ``n`` submit_sm were accepted; return the first ``n``."""
        while len(self.submitted) < n:
            await self._changed.wait()
        return self.submitted[:n]

    async def wait_deliver_responses(self, n: int) -> list[int]:
        """Wait until the ESME answered at least ``n`` deliver_sm; return the first ``n``
        statuses."""
        while len(self.deliver_responses) < n:
            await self._changed.wait()
        return self.deliver_responses[:n]

    async def wait_submitted_to(self, number: str, *, start: int = 0) -> SubmittedSm:
        """Wait for the first accepted submit_sm, from index ``start`` of ``submitted``
        on, whose destination is ``number`` (``0327000686``, ``84327000686`` and
        ``+84327000686`` are the same number)."""
        while True:
            for submitted in self.submitted[start:]:
                if same_number(submitted.event.destination_addr, number):
                    return submitted
            start = max(start, len(self.submitted))
            await self._changed.wait()

    # --- fault switches ----------------------------------------------------------

    def throttle_next(self, n: int, status: int = CommandStatus.ESME_RTHROTTLED) -> None:
        """Answer the next ``n`` submit_sm with ``status`` instead of accepting them."""
        self._throttle_remaining = n
        self._throttle_status = status

    def delay_responses(self, seconds: float) -> None:
        """Hold every submit_sm_resp ``seconds`` (each on its own timer: a window
        of N requests is answered N at a time, not one after the other)."""
        self._response_delay = max(0.0, seconds)

    def black_hole(self, on: bool = True) -> None:
        """Read everything, answer nothing (BlackHoleSmsc)."""
        self._black_hole = on

    def no_response_on_submit(self, on: bool = True) -> None:
        """Answer everything but submit_sm (NoResponseOnSubmitSmsc)."""
        self._no_response_on_submit = on

    def generic_nack_all(self, on: bool = True, status: int = CommandStatus.ESME_RSYSERR) -> None:
        """Answer every request with generic_nack(``status``) (GenericNackSmsc)."""
        self._generic_nack = status if on else None

    def enquire_link_silently(self, on: bool = True) -> None:
        """Leave enquire_link unanswered."""
        self._enquire_link_silent = on

    def unbind_silently(self, on: bool = True) -> None:
        """Leave the ESME's unbind unanswered and the connection open (UnbindNoResponseSmsc)."""
        self._unbind_silent = on

    # --- SMSC-initiated actions --------------------------------------------------

    async def drop_connections(self) -> None:
        """Reset every TCP connection (RST, no unbind)."""
        for session in list(self._sessions.values()):
            with contextlib.suppress(OSError):
                session.stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self._mark_closed(session)
            await trio.aclose_forcefully(session.stream)

    async def unbind_all(
        self, wait_response: bool = True, *, answer_within: float = REQUEST_TIMEOUT
    ) -> int:
        """Send unbind on every bound session.

        With ``wait_response`` wait up to ``answer_within`` seconds for each unbind_resp, then
        close the connection; without, leave the connection for the ESME to close.
        Returns how many unbind_resp came (also counted in ``unbind_responses_received``).
        """
        targets = [s for s in self._sessions.values() if s.info() is not None]
        answered = 0

        async def one(session: _Session) -> None:
            nonlocal answered
            session.mode = None
            self._notify_bound()
            pending = await self._request(session, Unbind(sequence=session.conn.next_sequence()))
            if pending is None or not wait_response:
                return
            with trio.move_on_after(answer_within):
                await pending.done.wait()
            if isinstance(pending.response, UnbindResp):
                answered += 1
            self._mark_closed(session)
            await trio.aclose_forcefully(session.stream)

        async with trio.open_nursery() as nursery:
            for session in targets:
                nursery.start_soon(one, session)
        return answered

    async def send_garbage(self, data: bytes = b"\xff\xff\xff\xff" + bytes(12)) -> None:
        """Write ``data`` raw to every connection (default: a command_length of
        0xFFFFFFFF, the CommandLengthTooLongSmsc)."""
        for session in list(self._sessions.values()):
            await self._write_raw(session, data)

    async def send_unknown_command(
        self, command_id: int = 0x00000999, *, answer_within: float = REQUEST_TIMEOUT
    ) -> list[int]:
        """Send a well-framed PDU with ``command_id`` to every bound session and wait up
        to ``answer_within`` seconds for the generic_nacks; returns their statuses (also appended
        to ``generic_nacks_received`` as they arrive; the core itself rejects them as
        answering nothing it sent, which the reader ignores)."""
        statuses: list[int] = []

        async def one(session: _Session) -> None:
            sequence = session.conn.next_sequence()
            pending = _Pending()
            session.raw_pending[sequence] = pending
            try:
                header = struct.pack(">IIII", 16, command_id, 0, sequence)
                if not await self._write_raw(session, header):
                    return
                with trio.move_on_after(answer_within):
                    await pending.done.wait()
            finally:
                session.raw_pending.pop(sequence, None)
            if pending.response is not None:
                statuses.append(pending.response.command_status)

        async with trio.open_nursery() as nursery:
            for session in self._sessions.values():
                if session.info() is not None:
                    nursery.start_soon(one, session)
        return statuses

    async def send_enquire_link(self, *, answer_within: float = REQUEST_TIMEOUT) -> bool:
        """enquire_link on every bound session; True if there was one and all answered
        within ``answer_within`` seconds."""
        results: list[bool] = []

        async def one(session: _Session) -> None:
            pending = await self._request(
                session, EnquireLink(sequence=session.conn.next_sequence())
            )
            if pending is None:
                results.append(False)
                return
            with trio.move_on_after(answer_within):
                await pending.done.wait()
            results.append(isinstance(pending.response, EnquireLinkResp))

        async with trio.open_nursery() as nursery:
            for session in self._sessions.values():
                if session.info() is not None:
                    nursery.start_soon(one, session)
        return bool(results) and all(results)

    async def inject_mo(
        self,
        source_addr: str = "84327000686",
        text: str = "BH MK 0123456789",
        *,
        source_addr_ton: int = 1,
        source_addr_npi: int = 1,
        destination_addr: str | None = None,
        data_coding: int = 0,
        parts: int = 1,
        session: int | None = None,
    ) -> int:
        """Deliver an MO (deliver_sm) to a bound receiver and return the ESME's
        deliver_sm_resp status (the first non-zero one when split in ``parts``).

        ``session`` picks a session id (see ``sessions``); by default the first bound
        receiver or transceiver. Raises NoReceiverError when there is none and
        SimulatorError when the connection dies before the answer.
        """
        target = self._pick_receiver(session)
        destination = self.config.short_code if destination_addr is None else destination_addr
        if not 1 <= parts <= 255:
            raise ValueError("parts must be from 1 to 255")
        reference = random.randrange(256)
        for index, chunk in enumerate(_split(text, parts) if parts > 1 else [text], start=1):
            payload = _encode_text(chunk, data_coding)
            if len(payload) > _MAX_SHORT_MESSAGE - (6 if parts > 1 else 0):
                raise ValueError(f"{len(payload)} octets do not fit one deliver_sm: use parts=")
            esm_class = 0
            if parts > 1:
                payload = bytes([5, 0, 3, reference, parts, index]) + payload
                esm_class = _ESM_UDHI

            def build(
                sequence: int, payload: bytes = payload, esm_class: int = esm_class
            ) -> DeliverSm:
                return DeliverSm(
                    sequence=sequence,
                    source_addr_ton=source_addr_ton,
                    source_addr_npi=source_addr_npi,
                    source_addr=source_addr,
                    destination_addr=destination,
                    esm_class=esm_class,
                    data_coding=data_coding,
                    short_message=payload,
                )

            status = await self._deliver(target, build)
            if status is None:
                raise SimulatorError(f"session {target.id} closed before deliver_sm_resp")
            self._emit(
                "mo_sent",
                session=target.id,
                source_addr=source_addr,
                destination_addr=destination,
                text=chunk,
                part=index,
                parts=parts,
                status=status,
            )
            if status != 0:
                return status
        return 0

    # --- internals: sessions -----------------------------------------------------

    def _emit(self, name: str, **fields: object) -> None:
        if self._on_event is not None:
            self._on_event(name, fields)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _notify_bound(self) -> None:
        self._bound_changed.set()
        self._bound_changed = trio.Event()
        self._notify()

    def _pick_receiver(self, session_id: int | None) -> _Session:
        for session in self._sessions.values():
            if session.receives and session_id in (None, session.id):
                return session
        which = "any session" if session_id is None else f"session {session_id}"
        raise NoReceiverError(f"no receiver or transceiver bound ({which})")

    def _mark_closed(self, session: _Session) -> None:
        if session.closed:
            return
        session.closed = True
        for pending in (*session.pending.values(), *session.raw_pending.values()):
            pending.resolve(None)
        self._sessions.pop(session.id, None)
        self._notify_bound()

    async def _serve(self, stream: trio.SocketStream) -> None:
        session = _Session(self._next_session_id, stream, deliver_window=self.config.deliver_window)
        self._next_session_id += 1
        self._sessions[session.id] = session
        self._emit("connection_opened", session=session.id, peer=_peer(stream))
        reason = "closed by peer"
        try:
            reason = await self._read_loop(session)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reason = "connection lost" if not session.closed else "closed by simulator"
        finally:
            self._mark_closed(session)
            with trio.CancelScope(shield=True):
                await stream.aclose()
            self._emit("connection_closed", session=session.id, reason=reason)

    async def _read_loop(self, session: _Session) -> str:
        while True:
            data = await session.stream.receive_some(_RECEIVE_SIZE)
            if session.closed:
                return "closed by simulator"
            for command_id, status, sequence in session.tap.feed(data):
                self._on_header(session, command_id, status, sequence)
            session.conn.receive_data(data)
            while True:
                try:
                    event = session.conn.next_event()
                except PduRejected as exc:
                    if exc.reply is not None and not self._black_hole:
                        await self._write_raw(session, exc.reply)
                    continue
                except RemoteProtocolError as exc:
                    self._emit("protocol_error", session=session.id, error=str(exc))
                    return f"protocol error: {exc}"
                except LocalProtocolError:
                    # A write failed in another task (send_failed): the connection is dead.
                    return "connection lost"
                if isinstance(event, NeedData):
                    break
                await self._handle(session, event)
                if session.closed:
                    return "closed by simulator"
            if session.outgoing:
                # The answers queued while handling this read, in one write.
                await self._written(session, session.outgoing[-1])
            if not data:
                return "closed by peer"

    def _on_header(self, session: _Session, command_id: int, status: int, sequence: int) -> None:
        pending = session.raw_pending.get(sequence)
        if pending is not None and command_id == _GENERIC_NACK_ID:
            pending.resolve(GenericNack(sequence=sequence, command_status=status))
            self.generic_nacks_received.append(status)
            self._notify()

    async def _handle(self, session: _Session, event: Event) -> None:
        match event:
            case Bind():
                await self._on_bind(session, event)
            case SubmitSm():
                await self._on_submit(session, event)
            case EnquireLink():
                self.enquire_links_received += 1
                if not self._enquire_link_silent and not await self._intercepted(session, event):
                    self._queue(session, EnquireLinkResp(sequence=event.sequence))
            case Unbind():
                await self._on_unbind(session, event)
            case DeliverSm():
                # An ESME may not send deliver_sm to an SMSC.
                await self._send(
                    session,
                    GenericNack(
                        sequence=event.sequence, command_status=CommandStatus.ESME_RINVCMDID
                    ),
                )
            case GenericNack():
                pending = session.pending.get(event.sequence)
                if pending is not None:
                    pending.resolve(event)
                self.generic_nacks_received.append(event.command_status)
                self._notify()
            case UnbindResp() | EnquireLinkResp() | DeliverSmResp():
                if isinstance(event, UnbindResp):
                    self.unbind_responses_received += 1
                pending = session.pending.get(event.sequence)
                if pending is not None:
                    pending.resolve(event)
            case BindResp() | SubmitSmResp():
                pass  # the SMSC never sends what these would answer
            case _:
                assert_never(event)

    async def _intercepted(
        self, session: _Session, event: Bind | SubmitSm | EnquireLink | Unbind
    ) -> bool:
        """True when a fault switch took care of (or swallowed) the request."""
        if self._black_hole:
            return True
        if self._generic_nack is not None:
            nack = GenericNack(sequence=event.sequence, command_status=self._generic_nack)
            await self._send(session, nack)
            return True
        return False

    async def _on_bind(self, session: _Session, event: Bind) -> None:
        if await self._intercepted(session, event):
            return
        if event.system_id != self.config.system_id:
            status = CommandStatus.ESME_RINVSYSID
        elif not hmac.compare_digest(
            event.password.encode("utf-8", "surrogateescape"),
            self.config.password.encode("utf-8", "surrogateescape"),
        ):
            status = CommandStatus.ESME_RINVPASWD
        else:
            status = CommandStatus.ESME_ROK
        response = BindResp(
            sequence=event.sequence,
            command_status=status,
            mode=event.mode,
            system_id=SMSC_SYSTEM_ID,
        )
        if not await self._send(session, response):
            return
        if status != CommandStatus.ESME_ROK:
            self._emit(
                "bind_failed",
                session=session.id,
                mode=event.mode.value,
                system_id=event.system_id,
                status=int(status),
            )
            return
        session.mode = event.mode
        session.system_id = event.system_id
        self._emit(
            "bind_succeeded", session=session.id, mode=event.mode.value, system_id=event.system_id
        )
        self._notify_bound()

    async def _on_submit(self, session: _Session, event: SubmitSm) -> None:
        session.outstanding_submits += 1
        self.max_outstanding_seen = max(self.max_outstanding_seen, session.outstanding_submits)
        if await self._intercepted(session, event):
            if not self._black_hole:
                session.outstanding_submits -= 1
            return
        if self._no_response_on_submit:
            return
        text = _submit_text(event)
        message_id = ""
        if self._throttle_remaining > 0:
            self._throttle_remaining -= 1
            status = self._throttle_status
        else:
            status = CommandStatus.ESME_ROK
            message_id = self._accept(session, event, text)
        self._emit(
            "submit_sm_received",
            session=session.id,
            source_addr=event.source_addr,
            destination_addr=event.destination_addr,
            text=text,
            message_id=message_id,
            status=int(status),
        )
        response = SubmitSmResp(
            sequence=event.sequence, command_status=status, message_id=message_id
        )
        if self._response_delay > 0:
            self._nursery.start_soon(self._answer_submit_later, session, response)
        else:
            # Written by the reader after this read's other PDUs are handled.
            self._queue(session, response)
            session.outstanding_submits -= 1

    def _accept(self, session: _Session, event: SubmitSm, text: str) -> str:
        number = self._next_message_number
        self._next_message_number += 1
        message_id = format_message_id(number, self.config.submit_id_format)
        self.submitted.append(
            SubmittedSm(
                event=event,
                message_id=message_id,
                text=text,
                received_at=trio.current_time(),
                session_id=session.id,
            )
        )
        self._notify()
        if event.registered_delivery & 0x01:
            spec = ReceiptSpec(
                message_id=message_id,
                receipt_id=format_message_id(number, self.config.receipt_id_format),
                stat=self.config.receipt_stat,
                handset=event.destination_addr,
                handset_ton=event.dest_addr_ton,
                handset_npi=event.dest_addr_npi,
                short_code=event.source_addr,
                short_code_ton=event.source_addr_ton,
                short_code_npi=event.source_addr_npi,
                text=text,
                submitted_at=_now(),
                with_tlvs=self.config.receipt_tlvs,
            )
            self._nursery.start_soon(self._receipt_task, spec, session.system_id)
        return message_id

    async def _answer_submit(self, session: _Session, response: SubmitSmResp) -> None:
        await self._send(session, response)
        session.outstanding_submits -= 1

    async def _answer_submit_later(self, session: _Session, response: SubmitSmResp) -> None:
        await trio.sleep(self._response_delay)
        await self._answer_submit(session, response)

    async def _on_unbind(self, session: _Session, event: Unbind) -> None:
        self.unbinds_received += 1
        self._emit("unbind_received", session=session.id)
        if self._unbind_silent or await self._intercepted(session, event):
            return
        await self._send(session, UnbindResp(sequence=event.sequence))
        self._mark_closed(session)
        await trio.aclose_forcefully(session.stream)

    # --- internals: writing ------------------------------------------------------

    def _queue(self, session: _Session, payload: Event | bytes) -> _Outgoing:
        """Queue ``payload`` for the next flush (see the module docstring)."""
        item = _Outgoing(payload=payload)
        if session.closed:
            item.taken = item.done = True
        else:
            session.outgoing.append(item)
        return item

    async def _send(self, session: _Session, event: Event) -> bool:
        """Encode and write ``event``; False when the session can no longer take it."""
        if session.closed:
            return False
        return await self._written(session, self._queue(session, event))

    async def _write_raw(self, session: _Session, data: bytes) -> bool:
        if session.closed:
            return False
        return await self._written(session, self._queue(session, data))

    async def _written(self, session: _Session, item: _Outgoing) -> bool:
        """Wait until the flush that takes ``item`` is over; whether it was written."""
        try:
            while not item.done:
                if session.flushing:
                    await session.flushed.wait()
                    continue
                session.flushing = True
                try:
                    # One pass of the scheduler: the others writing now join this batch.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    await self._flush(session)
                finally:
                    session.flushing = False
                    session.flushed.set()
                    session.flushed = trio.Event()
        except BaseException:
            if not item.taken:
                session.outgoing.remove(item)
            raise
        return item.written

    async def _flush(self, session: _Session) -> None:
        batch, session.outgoing = session.outgoing, []
        now = trio.current_time()
        chunks: list[bytes] = []
        encoded: list[_Outgoing] = []
        for item in batch:
            item.taken = True
            if isinstance(item.payload, bytes):
                chunks.append(item.payload)
                encoded.append(item)
                continue
            try:
                chunks.append(session.conn.send(item.payload, now=now))
            except LocalProtocolError:
                continue  # the bind state moved on (e.g. unbound) while this waited
            encoded.append(item)
        try:
            if chunks:
                await session.stream.send_all(b"".join(chunks))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            session.conn.send_failed()
            self._mark_closed(session)
        except BaseException:
            session.conn.send_failed()
            raise
        else:
            for item in encoded:
                item.written = True
        finally:
            for item in batch:
                item.done = True

    async def _request(self, session: _Session, event: Unbind | EnquireLink) -> _Pending | None:
        pending = _Pending()
        session.pending[event.sequence] = pending
        if not await self._send(session, event):
            session.pending.pop(event.sequence, None)
            return None
        return pending

    async def _deliver(self, session: _Session, build: Callable[[int], DeliverSm]) -> int | None:
        """Send one deliver_sm, wait for its answer; its status, or None if lost."""
        async with session.deliver_window:
            sequence = session.conn.next_sequence()
            pending = _Pending()
            session.pending[sequence] = pending
            try:
                if not await self._send(session, build(sequence)):
                    return None
                await pending.done.wait()
            finally:
                session.pending.pop(sequence, None)
        if pending.response is None:
            return None
        status = pending.response.command_status
        self.deliver_responses.append(status)
        self._notify()
        return status

    # --- internals: receipts -----------------------------------------------------

    async def _wait_receiver(self, system_id: str) -> _Session:
        while True:
            for session in self._sessions.values():
                if session.receives and session.system_id == system_id:
                    return session
            await self._bound_changed.wait()

    async def _receipt_task(self, spec: ReceiptSpec, system_id: str) -> None:
        await trio.sleep(self.config.receipt_delay)
        for _attempt in range(RECEIPT_ATTEMPTS):
            session = await self._wait_receiver(system_id)
            status = await self._deliver(
                session, lambda sequence: build_receipt(spec, sequence=sequence, done_at=_now())
            )
            if status is not None:
                self._emit(
                    "receipt_sent",
                    session=session.id,
                    message_id=spec.message_id,
                    receipt_id=spec.receipt_id,
                    stat=spec.stat,
                    status=status,
                )
            if status is not None and status not in _TEMPORARY_STATUSES:
                return
            await trio.sleep(max(self.config.receipt_delay, 0.05))

    # --- internals: control port -------------------------------------------------

    async def _serve_control(self, stream: trio.SocketStream) -> None:
        await serve_control_connection(self, stream)


@asynccontextmanager
async def open_simulator(
    config: SimulatorConfig | None = None,
    *,
    on_event: SimulatorEventHandler | None = None,
) -> AsyncIterator[Simulator]:
    """Run a simulated SMSC; it listens when the block is entered and every
    connection is closed when it is left. ``on_event`` hears one call per event."""
    config = SimulatorConfig() if config is None else config
    async with trio.open_nursery() as nursery:
        sim = Simulator(config, nursery, on_event)
        listeners = await nursery.start(
            functools.partial(
                trio.serve_tcp, sim._serve, config.port, host=config.host, handler_nursery=nursery
            )
        )
        sim.port = listeners[0].socket.getsockname()[1]
        if config.control_port is not None:
            control = await nursery.start(
                functools.partial(
                    trio.serve_tcp, sim._serve_control, config.control_port, host="127.0.0.1"
                )
            )
            sim.control_port = control[0].socket.getsockname()[1]
        try:
            yield sim
        finally:
            nursery.cancel_scope.cancel()
