"""The trio driver of one SMSC bind: :class:`Link`, the facade callers hold.

Theory of operation
-------------------
A link is built by job, each module with one:

* ``_supervisor``: one supervisor task per TCP connection the link needs (one
  for a transceiver bind, two for a transmitter + receiver pair) connects,
  binds, serves, and reconnects after a capped exponential backoff with jitter,
  until :meth:`Link.stop`;
* ``_session``: one connection -- a trio stream, a sans-I/O
  ``smscd.smpp.Connection``, the requests waiting for their responses, and the
  inbound items waiting for their acks;
* ``_flush``: the session's writer. Everyone writing (submitters, the reader,
  the timers, ack handles) queues events in order, and one flush at a time
  encodes the whole queue with the core's ``send`` and writes it with one
  ``send_all`` (group commit). If ``send_all`` raises, the core is told
  (``send_failed``) and the session is closed;
* ``_reader``: the reader task of each session owns ``receive_some()``, feeds
  the core, answers enquire_link and unbind itself (never behind an
  application queue), resolves responses, and hands deliver_sm to the inbound
  path;
* ``_inbound``: deliver_sm become inbound items (multi-part MOs reassembled),
  answered only when the caller acks them; at most ``max_unacked`` are held
  unanswered, beyond which the reader stops reading and TCP pushes back on the
  SMSC. :func:`ack_all` answers many items with one write per connection;
* ``_timers``: the timer task of each session: response timeouts (a timed-out
  request closes the session), ack deadlines (ESME_RX_T_APPN after
  ``ack_timeout``), enquire_link after ``enquire_link_interval`` of silence;
* ``_submit``: submits wait for a bound transmitter, then leave one FIFO line
  in order while a window permit is free and the pace (``throughput``, throttle
  pauses) allows;
* ``_hub``: what those parts share -- configuration, log, counters, live
  sessions, the link's state and its wake-up.

Each module's docstring holds the details of its part. Time is read only
through ``trio.current_time()`` and handed to the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
import trio

from smscd.link._hub import Hub
from smscd.link._inbound import Inbound, ack_all
from smscd.link._submit import Submitter
from smscd.link._supervisor import Supervisor
from smscd.link._types import LinkStatistics

if TYPE_CHECKING:
    from smscd.link._config import LinkConfig
    from smscd.link._types import InboundItem, OutboundSm, SubmitResult

__all__ = ["Link", "ack_all"]


class Link:
    """The driver of one carrier bind (see the module docstring)."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        # Lazy: follows whatever configuration the daemon sets later.
        self.log = structlog.get_logger(carrier=config.name, system_id=config.system_id)
        self._hub = Hub(config, self.log)
        self._inbound = Inbound(self._hub)
        self._submits = Submitter(self._hub)
        self._supervisor = Supervisor(self._hub, self._inbound)
        self._started = False
        self._run_scope: trio.CancelScope | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, bind, serve and reconnect until :meth:`stop`.

        ``task_status.started()`` is called as soon as the supervisors run, not
        after the first bind, so a daemon starts even while a carrier is down.
        """
        if self._started:
            raise RuntimeError("Link.run() may be called only once")
        self._started = True
        hub = self._hub
        hub.bound_changed_at = trio.current_time()
        try:
            async with self._inbound.send_channel:
                with trio.CancelScope() as scope:
                    self._run_scope = scope
                    if hub.stopping:
                        task_status.started()
                        return
                    async with trio.open_nursery() as nursery:
                        for mode in hub.modes:
                            nursery.start_soon(self._supervisor.supervise, mode)
                        task_status.started()
        finally:
            for mode in hub.modes:
                hub.mode_state[mode] = "stopped"
            hub.notify()
            hub.stopped.set()

    async def wait_bound(self) -> None:
        """Return once every connection of the link is bound."""
        while not self._hub.is_bound():
            await self._hub.state_changed.wait()

    def inbound(self) -> trio.MemoryReceiveChannel[InboundItem]:
        """The channel of MOs and receipts (closed after run). It holds at most
        ``max_unacked`` items; the reader waits, rather than drop one, when the
        caller holds that many deliver_sm unanswered (``smscd.link._inbound``)."""
        return self._inbound.receive_channel

    async def submit(self, message: OutboundSm) -> SubmitResult:
        """Submit one MT and return what became of it.

        Never raises for network or SMSC trouble (that is ``RetryLater``). Raises
        ``smscd.smpp.LocalProtocolError`` for a message that cannot be encoded at
        all (text outside GSM 03.38, over 254 octets, address too long): a bug in
        the caller, not worth retrying.
        """
        return await self._submits.submit(message)

    async def stop(self) -> None:
        """Stop gracefully within ``stop_timeout``: refuse new submits, wait for
        the outstanding responses, unbind, close."""
        hub = self._hub
        if hub.stopping:
            if self._started:
                with trio.move_on_after(self.config.stop_timeout):
                    await hub.stopped.wait()
            return
        hub.stopping = True
        hub.notify()
        start = trio.current_time()
        deadline = start + self.config.stop_timeout
        self.log.info("link_stopping", in_flight=self._submits.in_flight)
        with trio.move_on_at(start + self.config.stop_timeout * 0.5):
            # Outstanding submits get their answers, and inbound items being made
            # durable get their acks out, before the unbind.
            await self._submits.drained.wait()
            while any(session.held for session in hub.sessions.values()):
                await hub.state_changed.wait()
        with trio.move_on_at(start + self.config.stop_timeout * 0.9, shield=True):
            async with trio.open_nursery() as nursery:
                for session in list(hub.sessions.values()):
                    nursery.start_soon(self._supervisor.unbind, session)
        for session in list(hub.sessions.values()):
            if not session.closed:
                # The unbind did not complete in time: drop the connection.
                session.close("stopped")
                await trio.aclose_forcefully(session.stream)
        if self._run_scope is not None:
            self._run_scope.cancel()
        if self._started:
            with trio.move_on_at(deadline):
                await hub.stopped.wait()
        self.log.info("link_stopped")

    def statistics(self) -> LinkStatistics:
        hub = self._hub
        c = hub.counters
        changed_at = hub.bound_changed_at
        throttled_at = self._submits.throttled_at
        now = trio.current_time() if changed_at is not None else 0.0
        return LinkStatistics(
            name=self.config.name,
            state=hub.state(),
            bound=hub.is_bound(),
            state_age=now - changed_at if changed_at is not None else 0.0,
            in_flight=self._submits.in_flight,
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
            throttled_ago=now - throttled_at if throttled_at is not None else None,
            mo_received=c.mo_received,
            receipts_received=c.receipts_received,
            inbound_held=self._inbound.held(),
            inbound_paused=c.inbound_paused,
        )
