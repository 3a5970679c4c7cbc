"""What the parts of one link share: its configuration and log, its counters, its
live sessions, and the state the supervisors, the submit path and the inbound
path all read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from smscd.link._config import BindKind
from smscd.smpp import BindMode, CommandStatus

if TYPE_CHECKING:
    import structlog

    from smscd.link._config import LinkConfig
    from smscd.link._session import Session

__all__ = ["Counters", "Hub", "status_name"]


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED`` for a known command_status, else ``0x0000XXXX``."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


@attrs.define
class Counters:
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


class Hub:
    """The shared state of one link (see the module docstring)."""

    def __init__(self, config: LinkConfig, log: structlog.typing.FilteringBoundLogger) -> None:
        self.config = config
        self.log = log
        self.modes: tuple[BindMode, ...] = (
            (BindMode.TRANSCEIVER,)
            if config.bind is BindKind.TRANSCEIVER
            else (BindMode.TRANSMITTER, BindMode.RECEIVER)
        )
        #: The mode whose session carries the submits.
        self.tx_mode = self.modes[0]
        #: What each supervisor is doing (``idle``, ``connecting``, ``binding``,
        #: ``bound``, ``backing_off``, ``stopped``).
        self.mode_state: dict[BindMode, str] = dict.fromkeys(self.modes, "idle")
        #: The live session of each mode.
        self.sessions: dict[BindMode, Session] = {}
        #: Set (and replaced) on every change of state: a bind, a close, an ack
        #: that leaves a session with nothing held, stop().
        self.state_changed = trio.Event()
        self.counters = Counters()
        self.stopping = False
        self.stopped = trio.Event()
        #: Whether the link was bound at the last state change, and since when
        #: (trio.current_time(), set once run() starts).
        self.was_bound = False
        self.bound_changed_at: float | None = None

    def notify(self) -> None:
        """Wake whoever waits for a state change; note a change of ``bound``."""
        self.state_changed.set()
        self.state_changed = trio.Event()
        bound = self.is_bound()
        if bound != self.was_bound:
            self.was_bound = bound
            self.bound_changed_at = trio.current_time()
            if not bound and not self.stopping:
                self.counters.disconnects += 1

    def is_bound(self) -> bool:
        """Every connection of the link is bound."""
        return all(
            (s := self.sessions.get(mode)) is not None and s.bound and not s.closed
            for mode in self.modes
        )

    def state(self) -> str:
        """The state ``statistics()`` reports (the least advanced connection's)."""
        if self.stopped.is_set():
            return "stopped"
        if self.stopping:
            return "stopping"
        order = ("idle", "backing_off", "connecting", "binding", "bound")
        return min(self.mode_state.values(), key=order.index)

    def tx_session(self) -> Session | None:
        """The bound session that carries submits, if any."""
        session = self.sessions.get(self.tx_mode)
        if session is None or not session.bound or session.closed:
            return None
        return session
