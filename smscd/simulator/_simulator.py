"""An SMSC that speaks real SMPP 3.4 over TCP, for tests and demos.

Theory of operation
-------------------
``open_simulator`` opens one nursery that owns everything: the SMPP listener, the
optional control listener, one reader task per TCP connection, delayed responses,
scheduled receipts and redeliveries. Leaving the ``async with`` cancels the
nursery and so closes every connection.

The simulator is built by role, each module with one job:

* ``_session``: one connection -- a ``smscd.smpp.Connection`` in the SMSC role,
  its writer (the link's group-flush ``smscd.link.FlushWriter``: one
  ``send_all`` for whatever was queued meanwhile), the slots the SMSC's own
  requests wait in, and the header tap that sees the answers to hand-made PDUs;
* ``_serve``: the reader task of each connection -- binds, enquire_link, unbind,
  responses, and submit_sm handed to the submit side;
* ``_submit``: the submit side -- accept or refuse, number, answer now or late,
  count what is outstanding, send receipts;
* ``_inbound``: the MO side -- ``inject_mo``, bursts, redelivery of refused MOs,
  raw PDUs;
* ``_hub``: what they share -- live sessions, wake-ups, counters, the fault
  switches that apply to every request, and the one way to send a deliver_sm and
  wait for its answer;
* this module: :class:`Simulator`, the facade callers hold (read-only counters,
  fault switches, SMSC-initiated actions), and ``open_simulator``.

Nothing here waits on a timer except where a method says so. Fault switches are
plain attributes read at the moment a PDU is handled, so they apply to live and
future sessions alike.
"""

from __future__ import annotations

import functools
import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import trio

from smscd.simulator._config import SimulatorConfig
from smscd.simulator._control import serve_control_connection
from smscd.simulator._errors import NoReceiverError, SimulatorError
from smscd.simulator._hub import Hub, SimulatorEventHandler
from smscd.simulator._inbound import InboundSide, MoBurst, MoResponse
from smscd.simulator._serve import ConnectionServer
from smscd.simulator._session import RawPending, SessionInfo
from smscd.simulator._submit import SubmitSide, SubmittedSm, same_number
from smscd.smpp import CommandStatus, EnquireLink, EnquireLinkResp, Unbind, UnbindResp

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from smscd.simulator._session import Session

__all__ = [
    "MoBurst",
    "MoResponse",
    "NoReceiverError",
    "SessionInfo",
    "Simulator",
    "SimulatorError",
    "SimulatorEventHandler",
    "SubmittedSm",
    "open_simulator",
    "same_number",
]

#: How long SMSC-initiated requests (unbind, enquire_link, raw PDUs) wait.
REQUEST_TIMEOUT: Final = 5.0
#: Deliveries of one refused MO, the first included, unless the caller says.
REDELIVERY_ATTEMPTS: Final = 5


class Simulator:
    """A running simulated SMSC; get one from :func:`open_simulator`.

    Read-only for callers: ``port``, ``control_port``, ``config``, ``submitted``,
    ``deliver_responses``, ``generic_nacks_received``, ``max_outstanding_submits``
    (also ``max_outstanding_seen``), ``mo_redeliveries``, ``unbinds_received``,
    ``enquire_links_received``, ``unbind_responses_received``, ``sessions``.
    Everything else is a method.
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
        self._hub = Hub(config, nursery, on_event)
        self._submits = SubmitSide(self._hub)
        self._inbound = InboundSide(self._hub)
        self._server = ConnectionServer(self._hub, self._submits)

    # --- observation -------------------------------------------------------------

    @property
    def submitted(self) -> list[SubmittedSm]:
        """Every submit_sm accepted, in arrival order."""
        return self._submits.submitted

    @property
    def deliver_responses(self) -> list[int]:
        """command_status of every answer the ESME gave to a deliver_sm (MO,
        redelivered MO or receipt), in arrival order."""
        return self._hub.deliver_responses

    @property
    def generic_nacks_received(self) -> list[int]:
        """command_status of every generic_nack the ESME sent."""
        return self._hub.generic_nacks_received

    @property
    def max_outstanding_submits(self) -> int:
        """The most submit_sm one session had received and not yet answered at
        once: an ESME that keeps to a window of W never makes it exceed W."""
        return self._submits.max_outstanding

    #: The earlier name of ``max_outstanding_submits``.
    max_outstanding_seen = max_outstanding_submits

    @property
    def mo_redeliveries(self) -> int:
        """MO deliver_sm sent again by ``redeliver_refused``."""
        return self._inbound.redeliveries

    @property
    def unbinds_received(self) -> int:
        return self._hub.unbinds_received

    @property
    def enquire_links_received(self) -> int:
        return self._hub.enquire_links_received

    @property
    def unbind_responses_received(self) -> int:
        """SMSC-initiated unbinds the ESME answered."""
        return self._hub.unbind_responses_received

    @property
    def sessions(self) -> list[SessionInfo]:
        """The bound sessions (a TX+RX pair is two)."""
        return self._hub.bound_sessions()

    async def wait_bound(self, n: int = 1) -> list[SessionInfo]:
        """Wait until at least ``n`` sessions are bound; return them."""
        while len(self.sessions) < n:
            await self._hub.bound_changed.wait()
        return self.sessions

    async def wait_submitted(self, n: int) -> list[SubmittedSm]:
        """Wait until at least ``n`` submit_sm were accepted; return the first ``n``."""
        return await self._submits.wait_submitted(n)

    async def wait_deliver_responses(self, n: int) -> list[int]:
        """Wait until the ESME answered at least ``n`` deliver_sm; return the first ``n``
        statuses."""
        while len(self.deliver_responses) < n:
            await self._hub.changed.wait()
        return self.deliver_responses[:n]

    async def wait_submitted_to(self, number: str, *, start: int = 0) -> SubmittedSm:
        """Wait for the first accepted submit_sm, from index ``start`` of ``submitted``
        on, whose destination is ``number`` (``0327000686``, ``84327000686`` and
        ``+84327000686`` are the same number)."""
        return await self._submits.wait_submitted_to(number, start=start)

    # --- fault switches ----------------------------------------------------------

    def throttle_next(self, n: int, status: int = CommandStatus.ESME_RTHROTTLED) -> None:
        """Answer the next ``n`` submit_sm with ``status`` instead of accepting them."""
        self._submits.throttle_remaining = n
        self._submits.throttle_status = status

    def delay_submit_responses(self, seconds: float) -> None:
        """Send every submit_sm_resp ``seconds`` late, each on its own timer: the
        SMSC goes on reading meanwhile, a window of N requests is answered N at a
        time, and other responses are not delayed. 0 turns it off."""
        self._submits.response_delay = max(0.0, seconds)

    #: The earlier name of ``delay_submit_responses``.
    delay_responses = delay_submit_responses

    def black_hole(self, on: bool = True) -> None:
        """Read everything, answer nothing (BlackHoleSmsc)."""
        self._hub.black_hole = on

    def no_response_on_submit(self, on: bool = True) -> None:
        """Answer everything but submit_sm (NoResponseOnSubmitSmsc)."""
        self._submits.no_response = on

    def generic_nack_all(self, on: bool = True, status: int = CommandStatus.ESME_RSYSERR) -> None:
        """Answer every request with generic_nack(``status``) (GenericNackSmsc)."""
        self._hub.generic_nack = status if on else None

    def enquire_link_silently(self, on: bool = True) -> None:
        """Leave enquire_link unanswered."""
        self._hub.enquire_link_silent = on

    def unbind_silently(self, on: bool = True) -> None:
        """Leave the ESME's unbind unanswered and the connection open (UnbindNoResponseSmsc)."""
        self._hub.unbind_silent = on

    def redeliver_refused(
        self, after_s: float | None, *, max_attempts: int = REDELIVERY_ATTEMPTS
    ) -> None:
        """Deliver again, ``after_s`` seconds later, every MO the ESME answers with a
        temporary error (ESME_RX_T_APPN, ESME_RMSGQFUL, ESME_RTHROTTLED) or leaves
        unanswered until its connection closes, as carriers do; at most
        ``max_attempts`` deliveries of one MO, the first included. A permanent
        error (ESME_RX_R_APPN or any other) is final. Redeliveries are counted in
        ``mo_redeliveries``. ``None`` turns it off (pending redeliveries are dropped)."""
        if after_s is None:
            self._inbound.redeliver = None
            return
        if after_s < 0 or max_attempts < 1:
            raise ValueError("after_s must be >= 0 and max_attempts >= 1")
        self._inbound.redeliver = (after_s, max_attempts)

    # --- SMSC-initiated actions --------------------------------------------------

    def _bound(self) -> list[Session]:
        return [s for s in self._hub.sessions.values() if s.info() is not None]

    async def drop_connections(self) -> None:
        """Reset every TCP connection (RST, no unbind)."""
        for session in list(self._hub.sessions.values()):
            await session.reset()

    async def unbind_all(
        self, wait_response: bool = True, *, answer_within: float = REQUEST_TIMEOUT
    ) -> int:
        """Send unbind on every bound session.

        With ``wait_response`` wait up to ``answer_within`` seconds for each unbind_resp, then
        close the connection; without, leave the connection for the ESME to close.
        Returns how many unbind_resp came (also counted in ``unbind_responses_received``).
        """
        answered = 0

        async def one(session: Session) -> None:
            nonlocal answered
            session.mode = None
            self._hub.notify_bound()
            pending = await session.request(Unbind(sequence=session.conn.next_sequence()))
            if pending is None or not wait_response:
                return
            with trio.move_on_after(answer_within):
                await pending.done.wait()
            if isinstance(pending.response, UnbindResp):
                answered += 1
            session.close()
            await trio.aclose_forcefully(session.stream)

        async with trio.open_nursery() as nursery:
            for session in self._bound():
                nursery.start_soon(one, session)
        return answered

    async def send_garbage(self, data: bytes = b"\xff\xff\xff\xff" + bytes(12)) -> None:
        """Write ``data`` raw to every connection (default: a command_length of
        0xFFFFFFFF, the CommandLengthTooLongSmsc)."""
        for session in list(self._hub.sessions.values()):
            await session.send(data)

    async def send_unknown_command(
        self, command_id: int = 0x00000999, *, answer_within: float = REQUEST_TIMEOUT
    ) -> list[int]:
        """Send a well-framed PDU with ``command_id`` to every bound session and wait up
        to ``answer_within`` seconds for the answers; returns their statuses (a
        generic_nack's also goes to ``generic_nacks_received``)."""
        statuses: list[int] = []

        async def one(session: Session) -> None:
            sequence = session.conn.next_sequence()
            raw = RawPending()
            session.raw_pending[sequence] = raw
            try:
                if not await session.send(struct.pack(">IIII", 16, command_id, 0, sequence)):
                    return
                with trio.move_on_after(answer_within):
                    await raw.done.wait()
            finally:
                session.raw_pending.pop(sequence, None)
            if raw.status is not None:
                statuses.append(raw.status)

        async with trio.open_nursery() as nursery:
            for session in self._bound():
                nursery.start_soon(one, session)
        return statuses

    async def send_enquire_link(self, *, answer_within: float = REQUEST_TIMEOUT) -> bool:
        """enquire_link on every bound session; True if there was one and all answered
        within ``answer_within`` seconds."""
        results: list[bool] = []

        async def one(session: Session) -> None:
            pending = await session.request(EnquireLink(sequence=session.conn.next_sequence()))
            if pending is None:
                results.append(False)
                return
            with trio.move_on_after(answer_within):
                await pending.done.wait()
            results.append(isinstance(pending.response, EnquireLinkResp))

        async with trio.open_nursery() as nursery:
            for session in self._bound():
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
        return await self._inbound.inject_mo(
            source_addr,
            text,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
            destination_addr=destination_addr,
            data_coding=data_coding,
            parts=parts,
            session=session,
        )

    async def burst(
        self,
        n: int,
        *,
        source: str = "84327000686",
        text: str = "BH MK 0123456789",
        source_addr_ton: int = 1,
        source_addr_npi: int = 1,
        destination_addr: str | None = None,
        data_coding: int = 0,
        session: int | None = None,
    ) -> MoBurst:
        """Send ``n`` MOs at once, without waiting for any answer (past the deliver
        window: an SMSC flushing its queue), in one write to one bound receiver.

        ``{i}`` in ``source`` or ``text`` becomes the MO's index (``str.format``,
        e.g. ``"84903{i:06d}"``). Returns once the PDUs are written (the ESME may
        push back by reading slowly); the :class:`MoBurst` collects the answers
        and the time each came (``await burst.wait_answered()``).
        """
        return await self._inbound.burst(
            n,
            source=source,
            text=text,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
            destination_addr=destination_addr,
            data_coding=data_coding,
            session=session,
        )

    async def send_raw(
        self, pdu: bytes, *, wait: float = REQUEST_TIMEOUT, session: int | None = None
    ) -> int | None:
        """Write ``pdu`` (any bytes, neither checked nor decoded) to a bound
        receiver and return the command_status of the ESME's first response of
        any type (deliver_sm_resp, generic_nack...) with the sequence number at
        octets 12-15; None when none came within ``wait`` seconds or the
        connection closed, and at once for fewer than 16 octets (no sequence
        number). Use a sequence number the simulator is not using for a request
        of its own."""
        return await self._inbound.send_raw(pdu, wait=wait, session=session)


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
                trio.serve_tcp,
                sim._server.serve,
                config.port,
                host=config.host,
                handler_nursery=nursery,
            )
        )
        sim.port = listeners[0].socket.getsockname()[1]
        if config.control_port is not None:
            control = await nursery.start(
                functools.partial(
                    trio.serve_tcp,
                    functools.partial(serve_control_connection, sim),
                    config.control_port,
                    host="127.0.0.1",
                )
            )
            sim.control_port = control[0].socket.getsockname()[1]
        try:
            yield sim
        finally:
            nursery.cancel_scope.cancel()
