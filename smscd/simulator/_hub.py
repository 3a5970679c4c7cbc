"""What the parts of one running simulator share.

The ``Hub`` holds the live sessions, the wake-ups callers wait on, the counters
read by tests, the fault switches that apply to every request (black hole,
generic_nack, silence), and the one way the SMSC sends a deliver_sm and waits for
its answer (MOs and receipts alike). The reader of each connection, the submit
side and the inbound side all work through it; ``Simulator`` is the facade.

Fault switches are plain attributes read at the moment a PDU is handled, so they
apply to live and future sessions alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

import trio

from smscd.simulator._errors import NoReceiverError
from smscd.simulator._session import Pending, Session
from smscd.smpp import CommandStatus, GenericNack

if TYPE_CHECKING:
    from smscd.simulator._config import SimulatorConfig
    from smscd.simulator._session import SessionInfo
    from smscd.smpp import Bind, DeliverSm, EnquireLink, SubmitSm, Unbind

__all__ = ["TEMPORARY_STATUSES", "Hub", "SimulatorEventHandler"]

#: deliver_sm_resp statuses after which a real SMSC delivers again later.
TEMPORARY_STATUSES: Final = frozenset(
    {CommandStatus.ESME_RX_T_APPN, CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL}
)

#: ``on_event(name, fields)``: one call per thing worth telling a human (see the CLI).
SimulatorEventHandler = Callable[[str, Mapping[str, object]], None]


class Hub:
    """The shared state of one running simulator (see the module docstring)."""

    def __init__(
        self,
        config: SimulatorConfig,
        nursery: trio.Nursery,
        on_event: SimulatorEventHandler | None,
    ) -> None:
        self.config = config
        self.nursery = nursery
        self._on_event = on_event
        self.sessions: dict[int, Session] = {}
        self._next_session_id = 1
        #: command_status of every answer the ESME gave to a deliver_sm (MO or receipt).
        self.deliver_responses: list[int] = []
        #: command_status of every generic_nack the ESME sent.
        self.generic_nacks_received: list[int] = []
        self.unbinds_received = 0
        self.enquire_links_received = 0
        #: SMSC-initiated unbinds the ESME answered.
        self.unbind_responses_received = 0
        # Fault switches that apply to every request.
        self.black_hole = False
        self.generic_nack: int | None = None
        self.enquire_link_silent = False
        self.unbind_silent = False
        #: Set (and replaced) when anything changed / a session bound or closed.
        self.changed = trio.Event()
        self.bound_changed = trio.Event()

    # --- events and wake-ups -----------------------------------------------------

    def emit(self, name: str, **fields: object) -> None:
        if self._on_event is not None:
            self._on_event(name, fields)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def notify_bound(self) -> None:
        self.bound_changed.set()
        self.bound_changed = trio.Event()
        self.notify()

    # --- sessions ----------------------------------------------------------------

    def new_session(self, stream: trio.SocketStream) -> Session:
        session = Session(
            self._next_session_id,
            stream,
            deliver_window=self.config.deliver_window,
            on_close=self._session_closed,
        )
        self._next_session_id += 1
        self.sessions[session.id] = session
        return session

    def _session_closed(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self.notify_bound()

    def bound_sessions(self) -> list[SessionInfo]:
        infos = (session.info() for session in self.sessions.values())
        return [info for info in infos if info is not None]

    def pick_receiver(self, session_id: int | None) -> Session:
        """The bound receiver (or transceiver) ``session_id``, or the first one."""
        for session in self.sessions.values():
            if session.receives and session_id in (None, session.id):
                return session
        which = "any session" if session_id is None else f"session {session_id}"
        raise NoReceiverError(f"no receiver or transceiver bound ({which})")

    async def wait_receiver(self, system_id: str) -> Session:
        """Wait for a bound receiver (or transceiver) of ``system_id``."""
        while True:
            for session in self.sessions.values():
                if session.receives and session.system_id == system_id:
                    return session
            await self.bound_changed.wait()

    # --- requests ----------------------------------------------------------------

    async def intercepted(
        self, session: Session, event: Bind | SubmitSm | EnquireLink | Unbind
    ) -> bool:
        """True when a fault switch took care of (or swallowed) the request."""
        if self.black_hole:
            return True
        if self.generic_nack is not None:
            await session.send(
                GenericNack(sequence=event.sequence, command_status=self.generic_nack)
            )
            return True
        return False

    def record_deliver_response(self, status: int) -> None:
        self.deliver_responses.append(status)
        self.notify()

    async def deliver(self, session: Session, build: Callable[[int], DeliverSm]) -> int | None:
        """Send one deliver_sm within the session's deliver window and wait for its
        answer; its status, or None if the connection closed first."""
        async with session.deliver_window:
            sequence = session.conn.next_sequence()
            pending = Pending()
            session.pending[sequence] = pending
            try:
                if not await session.send(build(sequence)):
                    return None
                await pending.done.wait()
            finally:
                session.pending.pop(sequence, None)
        if pending.response is None:
            return None
        status = pending.response.command_status
        self.record_deliver_response(status)
        return status
