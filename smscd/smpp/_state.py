"""The SMPP 3.4 session state machine, in one table.

Theory of operation
-------------------
Rule 1 (after h11's ``_state.py``): everything that affects the session state lives
here, in :data:`TRANSITIONS`, and nowhere else.

Both ends of a bind share one session state (SMPP 3.4 §2.3): OPEN, then BINDING
while a bind is outstanding, then one of the BOUND_* states, then UNBINDING while an
unbind is outstanding, then CLOSED. The table is keyed by::

    (state, sender, event type, ok)

* ``sender`` is the :class:`Role` that *sent* the PDU. The same key serves both
  ends: an ESME ``Connection`` looks up ``(state, ESME, SubmitSm)`` when it sends a
  submit_sm, and an SMSC ``Connection`` looks up the very same key when it receives
  one. That is what makes ``submit_sm`` from an ESME in BOUND_RX illegal for both.
* ``ok`` is False only for a response carrying a non-zero command_status. A
  ``generic_nack`` answering a request is looked up as the *failed response of that
  request* (a nacked bind is a failed bind), so it needs no rows of its own except
  the unmatched kind.
* The value is the next state, :data:`BOUND` (resolved with the bind mode into
  BOUND_TX/RX/TRX), or a :class:`Reject` naming the command_status to answer with
  (ESME_RALYBND for a second bind). A missing key means "not allowed here":
  ESME_RINVBNDSTS, or ESME_RINVCMDID when that sender may never send that PDU.

The machine only *checks* (:meth:`SessionMachine.next_state`) and *commits*
(:meth:`SessionMachine.apply`) on request of the Connection, so a PDU that fails a
later check (encoding, sequence matching) leaves the state untouched. ERROR is
entered only through :meth:`SessionMachine.fail`, never through the table.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeAlias

import attrs

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
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from smscd.smpp._status import CommandStatus

__all__ = ["BOUND", "TRANSITIONS", "Reject", "Role", "SessionMachine", "SessionState"]


class Role(enum.Enum):
    """Which end of the bind a Connection plays."""

    #: The application side (us, towards a carrier): binds, submits, receives MOs.
    ESME = "esme"
    #: The message centre side (the carrier, or our simulator).
    SMSC = "smsc"

    # Members are singletons: hash them by identity, in C (Enum's own __hash__
    # is Python code, and these key the transition table on every PDU).
    __hash__ = object.__hash__


class SessionState(enum.Enum):
    """SMPP 3.4 session states (§2.3), plus the terminal CLOSED and ERROR."""

    #: Connected, not bound: only bind, enquire_link and generic_nack.
    OPEN = "open"
    #: A bind_* is outstanding.
    BINDING = "binding"
    #: Bound as transmitter: submit_sm from the ESME.
    BOUND_TX = "bound_tx"
    #: Bound as receiver: deliver_sm from the SMSC.
    BOUND_RX = "bound_rx"
    #: Bound as transceiver: both directions.
    BOUND_TRX = "bound_trx"
    #: An unbind was sent or received; late responses still drain.
    UNBINDING = "unbinding"
    #: Unbound (unbind_resp exchanged) or EOF at a PDU boundary.
    CLOSED = "closed"
    #: The byte stream broke or a write failed: the connection is unusable.
    ERROR = "error"

    __hash__ = object.__hash__  # see Role


@attrs.frozen
class Reject:
    """A table value: the PDU is refused with this command_status."""

    status: CommandStatus


#: A table value: the bound state matching the bind mode.
BOUND: Final = "bound"

Target: TypeAlias = SessionState | Literal["bound"] | Reject
Key: TypeAlias = tuple[SessionState, Role, type[Event], bool]

_E = Role.ESME
_S = Role.SMSC
_BOUND_STATES: Final = (SessionState.BOUND_TX, SessionState.BOUND_RX, SessionState.BOUND_TRX)
_LIVE_STATES: Final = (
    SessionState.OPEN,
    SessionState.BINDING,
    *_BOUND_STATES,
    SessionState.UNBINDING,
)
_TX_STATES: Final = (SessionState.BOUND_TX, SessionState.BOUND_TRX)
_RX_STATES: Final = (SessionState.BOUND_RX, SessionState.BOUND_TRX)


def _build() -> dict[Key, Target]:
    t: dict[Key, Target] = {}

    def stay(states: tuple[SessionState, ...], sender: Role, etype: type[Event]) -> None:
        for state in states:
            for ok in (True, False):
                t[state, sender, etype, ok] = state

    # -- binding (§4.1): only the ESME binds.
    t[SessionState.OPEN, _E, Bind, True] = SessionState.BINDING
    t[SessionState.BINDING, _S, BindResp, True] = BOUND
    t[SessionState.BINDING, _S, BindResp, False] = SessionState.OPEN
    for state in (SessionState.BINDING, *_BOUND_STATES):
        t[state, _E, Bind, True] = Reject(CommandStatus.ESME_RALYBND)

    # -- link checks and negative acknowledgements: either side, any live state.
    for sender in (_E, _S):
        stay(_LIVE_STATES, sender, EnquireLink)
        stay((*_LIVE_STATES, SessionState.CLOSED), sender, EnquireLinkResp)
        stay((*_LIVE_STATES, SessionState.CLOSED), sender, GenericNack)

    # -- messages: submit_sm ESME->SMSC when TX; deliver_sm SMSC->ESME when RX.
    # Responses may still drain while unbinding or after close; a deliver_sm may
    # cross our unbind on the wire, so it is accepted while UNBINDING too.
    stay(_TX_STATES, _E, SubmitSm)
    stay((*_TX_STATES, SessionState.UNBINDING, SessionState.CLOSED), _S, SubmitSmResp)
    stay((*_RX_STATES, SessionState.UNBINDING), _S, DeliverSm)
    stay((*_RX_STATES, SessionState.UNBINDING, SessionState.CLOSED), _E, DeliverSmResp)

    # -- unbinding (§4.2): either side may start it once bound.
    for sender in (_E, _S):
        for state in _BOUND_STATES:
            t[state, sender, Unbind, True] = SessionState.UNBINDING
        t[SessionState.UNBINDING, sender, Unbind, True] = SessionState.UNBINDING  # crossed
        for ok in (True, False):
            t[SessionState.UNBINDING, sender, UnbindResp, ok] = SessionState.CLOSED
            t[SessionState.CLOSED, sender, UnbindResp, ok] = SessionState.CLOSED  # crossed
    return t


#: The whole session state machine. See the module docstring for the key.
TRANSITIONS: Final[dict[Key, Target]] = _build()

_MODE_STATES: Final = {
    BindMode.TRANSMITTER: SessionState.BOUND_TX,
    BindMode.RECEIVER: SessionState.BOUND_RX,
    BindMode.TRANSCEIVER: SessionState.BOUND_TRX,
}

#: Which role may ever send each event type (others get ESME_RINVCMDID).
_SENDERS: Final[dict[type[Event], frozenset[Role]]] = {
    etype: frozenset(sender for (_, sender, t, _) in TRANSITIONS if t is etype)
    for etype in (
        Bind,
        BindResp,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        GenericNack,
    )
}


class IllegalTransition(Exception):
    """Internal: the table has no transition for this key; carries the status."""

    def __init__(self, msg: str, status: CommandStatus) -> None:
        super().__init__(msg)
        self.status = status


@attrs.define
class SessionMachine:
    """The session state of one Connection and the bind mode it was bound with."""

    state: SessionState = SessionState.OPEN
    #: The mode of the bind in progress or in force; None before and after a failure.
    bind_mode: BindMode | None = None

    def next_state(
        self, sender: Role, etype: type[Event], *, ok: bool = True, mode: BindMode | None = None
    ) -> SessionState:
        """The state after ``sender`` sends ``etype``; raises IllegalTransition.

        ``mode`` is the mode of a Bind/BindResp (for BOUND); it defaults to the
        current bind_mode.
        """
        target = TRANSITIONS.get((self.state, sender, etype, ok))
        name = etype.__name__
        if target is None:
            if sender not in _SENDERS[etype]:
                raise IllegalTransition(
                    f"the {sender.name} never sends {name}", CommandStatus.ESME_RINVCMDID
                )
            raise IllegalTransition(
                f"{name} from the {sender.name} is not allowed in state {self.state.name}",
                CommandStatus.ESME_RINVBNDSTS,
            )
        if isinstance(target, Reject):
            raise IllegalTransition(
                f"{name} from the {sender.name} refused in state {self.state.name}",
                target.status,
            )
        if target == BOUND:
            bound_mode = mode or self.bind_mode
            assert bound_mode is not None, "BINDING always has a bind mode"
            return _MODE_STATES[bound_mode]
        assert isinstance(target, SessionState)
        return target

    def apply(
        self, sender: Role, etype: type[Event], *, ok: bool = True, mode: BindMode | None = None
    ) -> SessionState:
        """Check and commit one transition; return the new state."""
        return self.commit(etype, self.next_state(sender, etype, ok=ok, mode=mode), mode=mode)

    def commit(
        self, etype: type[Event], new: SessionState, *, mode: BindMode | None = None
    ) -> SessionState:
        """Commit a transition that ``next_state`` (same arguments) returned ``new`` for,
        with nothing applied in between."""
        if etype is Bind:
            self.bind_mode = mode
        elif self.state is SessionState.BINDING and new is SessionState.OPEN:
            self.bind_mode = None  # the bind failed
        self.state = new
        return new

    def close(self) -> None:
        """EOF at a PDU boundary: the peer is gone."""
        if self.state is not SessionState.ERROR:
            self.state = SessionState.CLOSED

    def fail(self) -> None:
        self.state = SessionState.ERROR
