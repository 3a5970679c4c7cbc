"""The sans-I/O SMPP connection: bytes in, events out; events in, bytes out.

Theory of operation
-------------------
A :class:`Connection` is one end of one bind, in one :class:`Role` (ESME or SMSC).
It owns no socket, no clock and no task (STYLE L1, L7); its driver does the I/O::

    conn.receive_data(chunk)          # b"" once the peer closed
    while True:
        event = conn.next_event()     # Event | NeedData, or raises
        if isinstance(event, NeedData):
            break
        ...                           # the driver answers enquire_link/unbind itself
    stream.send_all(conn.send(event, now=clock()))   # conn.send_failed() if that raises

Inside, three layers run in order on every received PDU:

1. **framing** (``_framing.FrameReader``) cuts whole PDUs off the buffer and checks
   ``command_length`` before the body is waited for: an impossible length or EOF
   inside a PDU is a :class:`FramingError`, the connection enters ERROR for good.
   A PDU over ``max_pdu_size`` but under the framing's hard limit is read and
   discarded without being held, then refused as a :class:`PduRejected`: a
   ``deliver_sm_resp`` ESME_RINVMSGLEN for a deliver_sm, a ``generic_nack``
   ESME_RINVCMDLEN for any other request, nothing for a response.
2. **codec** (``_codec.decode``) turns the PDU into an event; a PDU it cannot
   decode is a :class:`PduRejected` with a ``generic_nack`` ready to send.
3. **session** (``_state.SessionMachine``) checks the event against the state
   table. A request the state forbids is a :class:`PduRejected` carrying the
   fitting ``*_resp`` (e.g. ``submit_sm_resp`` ESME_RINVBNDSTS). A response must
   answer one of *our* outstanding requests (matched by sequence and type), else it
   is rejected without a reply -- responses are never answered.
4. **edge** (``_edge``, ESME role only): a deliver_sm, submit_sm_resp or
   bind_resp allowed by the session is checked field by field and normalised
   once, so nothing downstream meets a lone surrogate or an over-long value. A
   deliver_sm the daemon could not store or answer is a :class:`PduRejected`
   carrying a ``deliver_sm_resp`` with the fitting status (ESME_RINVSRCADR,
   ESME_RINVDSTADR, ESME_RINVMSGLEN); the session state is left as it was.

A PduRejected consumes exactly the one bad PDU: the framing is intact, so the
connection stays usable and the next ``next_event()`` reads the PDU after it.

Sending runs the same checks the other way round (a forbidden event is a
:class:`LocalProtocolError` and changes nothing), encodes, and only then commits
the state change. A request sent is *outstanding* until its response arrives,
with deadline ``now + response_timeout``; ``expired_requests(now)`` hands out the
overdue ones and ``fail_outstanding()`` every one (connection lost). What to do
about them -- resend, count, give up -- is the driver's policy, not ours.

Sequence numbers come from :meth:`Connection.next_sequence`: per connection, 1 to
0x7FFFFFFF then 1 again, skipping any still outstanding (STYLE L5).

The core answers nothing by itself (no automatic enquire_link_resp): the driver
decides what and when to write, and :func:`response_for` builds the answer.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, Final, assert_never

from smscd.smpp._codec import RESPONSE_BIT, CommandId, decode, encode, encode_generic_nack
from smscd.smpp._edge import EdgeRefusal, check_bind_resp, check_deliver_sm, check_submit_sm_resp
from smscd.smpp._errors import FramingError, LocalProtocolError, PduRejected
from smscd.smpp._events import (
    Bind,
    BindMode,
    BindResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Event,
    GenericNack,
    NeedData,
    Request,
    Response,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from smscd.smpp._framing import HEADER_SIZE, MAX_SEQUENCE, FrameReader, SkippedPdu
from smscd.smpp._state import IllegalTransition, Role, SessionMachine, SessionState
from smscd.smpp._status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Connection", "response_for"]

_REQUEST_TYPES: Final = (Bind, Unbind, EnquireLink, SubmitSm, DeliverSm)
_RESPONSE_OF: Final[dict[type[Event], type[Event]]] = {
    Bind: BindResp,
    Unbind: UnbindResp,
    EnquireLink: EnquireLinkResp,
    SubmitSm: SubmitSmResp,
    DeliverSm: DeliverSmResp,
}


def response_for(request: Request, command_status: int = 0, **fields: Any) -> Response:
    """Build the ``*_resp`` answering ``request``, with its sequence copied.

    ``fields`` are extra response fields: ``message_id=`` for a submit_sm_resp,
    ``system_id=`` for a bind_resp.
    """
    seq = request.sequence
    match request:
        case Bind():
            return BindResp(
                sequence=seq, command_status=command_status, mode=request.mode, **fields
            )
        case Unbind():
            return UnbindResp(sequence=seq, command_status=command_status, **fields)
        case EnquireLink():
            return EnquireLinkResp(sequence=seq, command_status=command_status, **fields)
        case SubmitSm():
            return SubmitSmResp(sequence=seq, command_status=command_status, **fields)
        case DeliverSm():
            return DeliverSmResp(sequence=seq, command_status=command_status, **fields)
        case _:
            assert_never(request)


def _peer(role: Role) -> Role:
    return Role.SMSC if role is Role.ESME else Role.ESME


def _oversized(skipped: SkippedPdu, max_pdu_size: int) -> PduRejected:
    """The refusal of a PDU the framing skipped for its size (module docstring)."""
    command_id, seq = skipped.command_id, skipped.sequence
    msg = (
        f"PDU of {skipped.command_length} octets over max_pdu_size {max_pdu_size} "
        f"skipped (command_id {command_id:#010x}, sequence {seq})"
    )
    reply: bytes | None
    if command_id == CommandId.DELIVER_SM:
        status = CommandStatus.ESME_RINVMSGLEN
        reply = encode(DeliverSmResp(sequence=seq, command_status=status))
    elif command_id & RESPONSE_BIT:
        status, reply = CommandStatus.ESME_RINVCMDLEN, None
    else:
        status = CommandStatus.ESME_RINVCMDLEN
        reply = encode_generic_nack(seq, status)
    return PduRejected(msg, sequence=seq, command_status=status, reply=reply)


class Connection:
    """One end of an SMPP 3.4 session, without I/O. See the module docstring."""

    def __init__(
        self,
        role: Role,
        *,
        max_pdu_size: int = 65536,
        response_timeout: float = 10.0,
        initial_sequence: int = 1,
    ) -> None:
        """``initial_sequence`` is the first number next_sequence() tries (1 unless
        a test wants to see the wrap)."""
        if not 1 <= initial_sequence <= MAX_SEQUENCE:
            raise ValueError("initial_sequence must be in 1..0x7FFFFFFF")
        if max_pdu_size < HEADER_SIZE:
            raise ValueError(f"max_pdu_size must be at least {HEADER_SIZE}")
        if not response_timeout > 0:
            raise ValueError("response_timeout must be positive")
        self._role = role
        self._peer = _peer(role)
        self.max_pdu_size = max_pdu_size
        self.response_timeout = response_timeout
        self._reader = FrameReader(max_pdu_size)
        self._machine = SessionMachine()
        self._framing_error: FramingError | None = None
        self._next_seq = initial_sequence
        self._outstanding: dict[int, Request] = {}
        self._deadlines: dict[int, float] = {}
        self._outstanding_view = types.MappingProxyType(self._outstanding)
        #: Binds and unbinds received and not yet answered, by sequence.
        self._inbound: dict[int, type[Event]] = {}

    def __repr__(self) -> str:
        return (
            f"<Connection {self._role.name} {self._machine.state.name} "
            f"outstanding={len(self._outstanding)}>"
        )

    # --- read-only state -------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def state(self) -> SessionState:
        return self._machine.state

    @property
    def bind_mode(self) -> BindMode | None:
        """The mode of the bind in progress or in force (None when not bound)."""
        return self._machine.bind_mode

    @property
    def outstanding(self) -> Mapping[int, Request]:
        """Our requests still waiting for a response, by sequence (live, read-only)."""
        return self._outstanding_view

    def next_deadline(self) -> float | None:
        """The earliest deadline among outstanding requests, or None."""
        return min(self._deadlines.values(), default=None)

    # --- receiving -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer; ``b""`` means the peer closed."""
        if self._reader.eof and data:
            raise LocalProtocolError("receive_data() after EOF")
        self._reader.feed(data)

    def next_event(self) -> Event | NeedData:
        """Parse the next PDU from the buffer.

        Returns an event, or NeedData when no whole PDU is buffered (and, after
        EOF at a PDU boundary, forever: the state is then CLOSED).

        Raises PduRejected for one bad PDU (send ``exc.reply`` if set, keep
        reading), FramingError when the stream is broken (state ERROR; raised again
        on every later call), LocalProtocolError when called after send_failed().
        In the ESME role the event has passed the edge checks (``_edge``).
        """
        if self._framing_error is not None:
            err = self._framing_error
            raise FramingError(str(err), command_status=err.command_status)
        if self._machine.state is SessionState.ERROR:
            raise LocalProtocolError("the connection failed (send_failed); drop it")
        try:
            frame = self._reader.next_frame()
        except FramingError as exc:
            self._framing_error = exc
            self._machine.fail()
            raise
        if frame is None:
            if self._reader.eof:
                self._machine.close()
            return NeedData()
        if isinstance(frame, SkippedPdu):
            raise _oversized(frame, self.max_pdu_size)
        event = decode(frame)
        if isinstance(event, _REQUEST_TYPES):
            return self._receive_request(event)
        return self._receive_response(event)

    def _receive_request(self, event: Request) -> Request:
        mode = event.mode if isinstance(event, Bind) else None
        try:
            new_state = self._machine.next_state(self._peer, type(event), mode=mode)
        except IllegalTransition as exc:
            raise PduRejected(
                f"{exc} (sequence {event.sequence})",
                sequence=event.sequence,
                command_status=exc.status,
                reply=encode(response_for(event, exc.status)),
            ) from exc
        if isinstance(event, DeliverSm) and self._role is Role.ESME:
            try:
                event = check_deliver_sm(event)
            except EdgeRefusal as exc:
                raise PduRejected(
                    f"deliver_sm refused: {exc} (sequence {event.sequence})",
                    sequence=event.sequence,
                    command_status=exc.status,
                    reply=encode(DeliverSmResp(sequence=event.sequence, command_status=exc.status)),
                ) from exc
        self._machine.commit(type(event), new_state, mode=mode)
        if isinstance(event, Bind | Unbind):
            self._inbound[event.sequence] = type(event)
        return event

    def _receive_response(self, event: Response) -> Response:
        seq = event.sequence
        request = self._outstanding.get(seq)
        name = type(event).__name__
        if request is None:
            raise PduRejected(
                f"{name} answers no outstanding request (sequence {seq})",
                sequence=seq,
                command_status=CommandStatus.ESME_RUNKNOWNERR,
                reply=None,
            )
        expected = _RESPONSE_OF[type(request)]
        if isinstance(event, GenericNack):
            etype, ok = expected, False
        elif type(event) is not expected or (
            isinstance(event, BindResp) and isinstance(request, Bind) and event.mode != request.mode
        ):
            raise PduRejected(
                f"{name} does not answer our {type(request).__name__} (sequence {seq})",
                sequence=seq,
                command_status=CommandStatus.ESME_RINVCMDID,
                reply=None,
            )
        else:
            etype, ok = expected, event.command_status == CommandStatus.ESME_ROK
        try:
            self._machine.apply(self._peer, etype, ok=ok)
        except IllegalTransition as exc:
            raise PduRejected(
                f"{exc} (sequence {seq})", sequence=seq, command_status=exc.status, reply=None
            ) from exc
        del self._outstanding[seq]
        del self._deadlines[seq]
        if self._role is Role.ESME:
            if isinstance(event, SubmitSmResp):
                return check_submit_sm_resp(event)
            if isinstance(event, BindResp):
                return check_bind_resp(event)
        return event

    # --- sending ---------------------------------------------------------------

    def send(self, event: Event, *, now: float = 0.0) -> bytes:
        """Check ``event`` against the session, encode it, commit the transition.

        A request becomes outstanding with deadline ``now + response_timeout``.
        Raises LocalProtocolError (and changes nothing) if the event is not allowed
        now or cannot be encoded.
        """
        if self._machine.state is SessionState.ERROR:
            raise LocalProtocolError("the connection is in ERROR; drop it")
        mode: BindMode | None = None
        ok = True
        inbound: type[Event] | None = None
        if isinstance(event, _REQUEST_TYPES):
            seq = event.sequence
            if not 1 <= seq <= MAX_SEQUENCE:
                raise LocalProtocolError(f"request sequence {seq} outside 1..0x7FFFFFFF")
            if seq in self._outstanding:
                raise LocalProtocolError(f"sequence {seq} is already outstanding")
            etype: type[Event] = type(event)
            if isinstance(event, Bind):
                mode = event.mode
        else:
            etype = type(event)
            ok = event.command_status == CommandStatus.ESME_ROK
            inbound = self._inbound.get(event.sequence)
            if isinstance(event, GenericNack) and inbound is not None:
                etype, ok = _RESPONSE_OF[inbound], False  # a nacked bind is a failed bind
            if isinstance(event, BindResp) and event.mode != self._machine.bind_mode:
                raise LocalProtocolError("bind_resp mode differs from the bind it answers")
        try:
            new_state = self._machine.next_state(self._role, etype, ok=ok, mode=mode)
        except IllegalTransition as exc:
            raise LocalProtocolError(f"cannot send: {exc}") from exc
        data = encode(event)
        if len(data) > self.max_pdu_size:
            raise LocalProtocolError(
                f"encoded PDU is {len(data)} octets, over max_pdu_size {self.max_pdu_size}"
            )
        self._machine.commit(etype, new_state, mode=mode)
        if isinstance(event, _REQUEST_TYPES):
            self._outstanding[event.sequence] = event
            self._deadlines[event.sequence] = now + self.response_timeout
        elif inbound is not None and etype is _RESPONSE_OF[inbound]:
            del self._inbound[event.sequence]  # that bind/unbind is answered
        return data

    def send_failed(self) -> None:
        """The driver could not write what send() returned: the connection is dead."""
        self._machine.fail()

    def next_sequence(self) -> int:
        """A fresh sequence number for a request: 1..0x7FFFFFFF, wrapping, never
        one still outstanding."""
        for _ in range(MAX_SEQUENCE):
            seq = self._next_seq
            self._next_seq = 1 if seq >= MAX_SEQUENCE else seq + 1
            if seq not in self._outstanding:
                return seq
        raise LocalProtocolError("every sequence number is outstanding")  # pragma: no cover

    # --- timeouts and loss -----------------------------------------------------

    def expired_requests(self, now: float) -> list[Request]:
        """Remove and return the outstanding requests whose deadline is <= now."""
        expired = [seq for seq, deadline in self._deadlines.items() if deadline <= now]
        result = []
        for seq in expired:
            del self._deadlines[seq]
            result.append(self._outstanding.pop(seq))
        return result

    def fail_outstanding(self) -> list[Request]:
        """Remove and return every outstanding request (the connection was lost)."""
        result = list(self._outstanding.values())
        self._outstanding.clear()
        self._deadlines.clear()
        return result
