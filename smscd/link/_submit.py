"""The submit path of a link: the window, the pace, throttling, and what became
of each submit_sm.

Theory of operation
-------------------
A submit first waits for a bound transmitter (on its own, with a timeout), then
joins one FIFO *line*. Submits leave the line only from its head, and only while
a window permit is free (``window`` permits, each held until the response) and
the pace allows (``1/throughput`` after the previous submit_sm, and not before a
throttle pause ends). Whoever frees a permit or joins the line *pumps* it:
starts (gives a sequence number and queues the submit_sm of) as many heads as
may go, at once, in line order, and wakes their tasks. A head held back only by
the pace is woken to sleep until its slot and pump again. Starting submits for
others, rather than letting each task take its own turn, keeps the order exact
(permits freed together, by responses that arrived in one read, would wake
their waiters in one scheduler batch, in an order trio leaves open) and costs no
scheduler round per submit. Nothing is reordered by a throttle: the throttled
message goes back to its caller as ``RetryLater`` while still holding its
permit, and the line behind it waits out the pause.

A started submit_sm is written by the session's group-flush writer with
whatever else is queued. Its response decides the result: ``Accepted`` with the
canonical forms of the message id; ``RetryLater`` for ESME_RTHROTTLED and
ESME_RMSGQFUL (which also pause the whole bind for ``throttle_pause``) and other
temporary statuses; ``Rejected`` for a permanent status. No response -- the
connection lost, or the response timed out -- is ``RetryLater`` too, counted in
``lost_in_flight`` since the SMSC may have accepted it.
"""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, Final, assert_never

import attrs
import trio

from smscd.link._hub import status_name
from smscd.link._session import WRITE_ERRORS
from smscd.link._types import Accepted, Rejected, RetryLater
from smscd.numbers import mask_msisdn
from smscd.smpp import (
    SessionState,
    SmppError,
    SubmitSm,
    SubmitSmResp,
    encode_gsm7,
    is_temporary,
    is_throttling,
    message_id_keys,
)

if TYPE_CHECKING:
    from smscd.link._hub import Hub
    from smscd.link._session import Pending, Session
    from smscd.link._types import OutboundSm, SubmitResult

__all__ = ["Submitter"]

_SUBMIT_STATES: Final = (SessionState.BOUND_TX, SessionState.BOUND_TRX)


@attrs.define(eq=False)
class _Turn:
    """A submit in the line (see the module docstring)."""

    message: OutboundSm
    short_message: bytes
    #: Set when the submit was started, or when the head must wait for its slot.
    wake: trio.Event = attrs.Factory(trio.Event)
    #: Once started (holding a window permit): its session and pending slot, or
    #: the RetryLater it ends with.
    started: tuple[Session, Pending] | RetryLater | None = None


class Submitter:
    """Submits of one link (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        config = hub.config
        #: Window permits not held by a started submit.
        self._free = config.window
        self._line: collections.deque[_Turn] = collections.deque()
        self._interval = 1.0 / config.throughput if config.throughput > 0 else 0.0
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        #: submit_sm written (or being written) and not yet answered.
        self.in_flight = 0
        #: Set while nothing is in flight (replaced when a submit starts).
        self.drained = trio.Event()
        self.drained.set()
        #: When the last throttle pause began.
        self.throttled_at: float | None = None

    async def submit(self, message: OutboundSm) -> SubmitResult:
        """See :meth:`smscd.link.Link.submit`."""
        short_message = (
            encode_gsm7(message.text)
            if message.data_coding == 0
            else message.text.encode("utf-16-be")
        )
        counters = self._hub.counters
        counters.submitted += 1
        result = await self._submit(message, short_message)
        match result:
            case Accepted():
                counters.accepted += 1
            case RetryLater():
                counters.retry_later += 1
            case Rejected():
                counters.rejected += 1
            case _:
                assert_never(result)
        return result

    async def _wait_for_tx(self) -> Session | None:
        hub = self._hub
        session = hub.tx_session()
        if session is not None:
            return session  # the hot path: no cancel scope
        with trio.move_on_after(hub.config.response_timeout):
            while (session := hub.tx_session()) is None and not hub.stopping:
                await hub.state_changed.wait()
            return session
        return None

    async def _submit(self, message: OutboundSm, short_message: bytes) -> SubmitResult:
        hub = self._hub
        if hub.stopping:
            return RetryLater(status=None, reason="stopping")
        if await self._wait_for_tx() is None:
            return RetryLater(status=None, reason="stopping" if hub.stopping else "not_bound")
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

    def _start_submit(self, turn: _Turn) -> tuple[Session, Pending] | RetryLater:
        """Give the submit_sm its sequence number and its place on the wire."""
        hub = self._hub
        session = hub.tx_session()
        if hub.stopping or session is None:
            reason = "stopping" if hub.stopping else "not_bound"
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
            data_coding=message.data_coding,
            short_message=turn.short_message,
        )
        pending = session.start_request(submit)
        if self.in_flight == 0:
            self.drained = trio.Event()
        self.in_flight += 1
        return session, pending

    def _abandon(self, started: tuple[Session, Pending] | RetryLater) -> None:
        """A started submit whose task was cancelled before it took over: undo
        what the start did (as a write cancelled before its flush would)."""
        if not isinstance(started, RetryLater):
            session, pending = started
            session.abandon_request(pending)
            self.in_flight -= 1
            if self.in_flight == 0:
                self.drained.set()
        self._free += 1
        self._pump()

    async def _finish_submit(
        self, message: OutboundSm, session: Session, pending: Pending
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
            except WRITE_ERRORS:
                # Part of it may have reached the SMSC.
                return self._lost(message, pending.request.sequence, "connection_lost")
            await pending.done.wait()
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.drained.set()
        # Still holding the permit: a throttle pause is in force before the
        # next submit is started.
        return self._classify(message, pending)

    def _lost(self, message: OutboundSm, sequence: int, reason: str) -> RetryLater:
        self._hub.counters.lost_in_flight += 1
        self._hub.log.warning(
            "submit_sm_lost",
            reason=reason,
            sequence=sequence,
            msisdn=mask_msisdn(message.destination_addr),
        )
        return RetryLater(status=None, reason=reason)

    def _classify(self, message: OutboundSm, pending: Pending) -> SubmitResult:
        response = pending.response
        if response is None:
            return self._lost(
                message, pending.request.sequence, pending.failure or "connection_lost"
            )
        status = response.command_status
        if status == 0 and isinstance(response, SubmitSmResp):
            return Accepted(
                message_id=response.message_id,
                id_keys=message_id_keys(response.message_id, self._hub.config.message_id_format),
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
        hub = self._hub
        now = trio.current_time()
        hub.counters.throttled += 1
        self.throttled_at = now
        if self._paused_until <= now:
            hub.log.warning(
                "link_throttled", status=status_name(status), pause=hub.config.throttle_pause
            )
        self._paused_until = max(self._paused_until, now + hub.config.throttle_pause)
