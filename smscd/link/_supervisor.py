"""The supervisor of each connection of a link: connect, bind, serve, back off.

A link runs one supervisor task per TCP connection it needs (one for a
transceiver bind, two for a transmitter + receiver pair). A supervisor loops:
connect (``connect_timeout``), bind, serve until the connection ends, then sleep
a capped exponential backoff with jitter and start again, until the link stops.
The backoff starts over only after a bind that lasted ``backoff_max``: an SMSC
that accepts binds and drops them at once is retried ever more slowly.

Serving a connection is two tasks in the session's cancel scope, the reader
(``smscd.link._reader``) and the timers (``smscd.link._timers``), while the
supervisor sends the bind and then waits. Whatever ends the session closes it:
every request still waiting fails (``connection_lost``) and the socket is
closed. A connect or bind failure is logged once and again only when it
changes; a lost bind is ``link_disconnected``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import structlog
import trio

from smscd.link._hub import status_name
from smscd.link._reader import run_reader
from smscd.link._session import WRITE_ERRORS, Session
from smscd.link._timers import run_timers
from smscd.smpp import Bind, BindResp, SmppError, Unbind, UnbindResp

if TYPE_CHECKING:
    from smscd.link._hub import Hub
    from smscd.link._inbound import Inbound
    from smscd.smpp import BindMode

__all__ = ["Supervisor"]


class Supervisor:
    """Connects, binds and reconnects each connection of one link."""

    def __init__(self, hub: Hub, inbound: Inbound) -> None:
        self._hub = hub
        self._inbound = inbound
        self._bind_counter = 0
        #: The connect/bind failure last logged per mode (None: none since a bind).
        self._last_failure: dict[BindMode, str | None] = dict.fromkeys(hub.modes)

    async def supervise(self, mode: BindMode) -> None:
        """Keep the connection of ``mode`` bound until the link stops."""
        hub = self._hub
        config = hub.config
        attempt = 0
        first = True
        while not hub.stopping:
            if not first:
                hub.counters.reconnects += 1
            first = False
            bound_for = await self._run_session(mode)
            if hub.stopping:
                break
            if bound_for is not None and bound_for >= config.backoff_max:
                # A bind that lasted: the next trouble is new trouble. One
                # dropped at once keeps backing off, so that an SMSC that
                # accepts binds and then drops them is not hammered.
                attempt = 0
            delay = min(config.backoff_max, config.backoff_initial * 2 ** min(attempt, 32))
            delay *= random.uniform(0.5, 1.0)
            attempt += 1
            hub.mode_state[mode] = "backing_off"
            hub.log.info("link_reconnecting", mode=mode.value, delay=round(delay, 3))
            await trio.sleep(delay)

    def _note_failure(self, mode: BindMode, key: str, event: str, **fields: object) -> None:
        """Log a connect/bind failure once, and again only when it changes."""
        if self._last_failure[mode] != key:
            self._last_failure[mode] = key
            self._hub.log.warning(event, mode=mode.value, **fields)

    async def _run_session(self, mode: BindMode) -> float | None:
        """One connection from connect to close; returns how long it stayed
        bound (None: it never was)."""
        hub = self._hub
        config = hub.config
        log = hub.log
        self._bind_counter += 1
        bind_id = f"{config.name}/{mode.value}/{self._bind_counter}"
        structlog.contextvars.bind_contextvars(
            carrier=config.name, system_id=config.system_id, bind_id=bind_id
        )
        hub.mode_state[mode] = "connecting"
        try:
            with trio.fail_after(config.connect_timeout):
                stream = await trio.open_tcp_stream(config.host, config.port)
        except (OSError, trio.TooSlowError) as exc:
            self._note_failure(
                mode,
                f"connect:{type(exc).__name__}",
                "link_connect_failed",
                error=type(exc).__name__,
            )
            return None
        session = Session(config=config, mode=mode, bind_id=bind_id, stream=stream)
        hub.sessions[mode] = session
        # Quiet while retrying a failure already reported (logged once, D6).
        log_connected = log.info if self._last_failure[mode] is None else log.debug
        log_connected("link_connected", mode=mode.value, bind_id=bind_id)
        try:
            with session.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(run_reader, hub, self._inbound, session)
                    nursery.start_soon(run_timers, hub, self._inbound, session)
                    hub.mode_state[mode] = "binding"
                    if await self._bind(session):
                        await trio.sleep_forever()
                    session.close("bind_failed")
        finally:
            was_bound = session.bind_status == 0
            session.close(session.close_reason or "cancelled")
            if hub.sessions.get(mode) is session:
                del hub.sessions[mode]
            session.fail_all("connection_lost")
            hub.notify()
            await trio.aclose_forcefully(stream)
            if hub.stopping:
                pass
            elif was_bound:
                log.warning("link_disconnected", mode=mode.value, reason=session.close_reason)
            elif session.bind_status is not None:
                name = status_name(session.bind_status)
                self._note_failure(mode, f"bind:{name}", "bind_failed", status=name)
            else:
                reason = session.close_reason
                self._note_failure(
                    mode, f"bind:{reason}", "bind_failed", status=None, reason=reason
                )
        if session.bound_at is None:
            return None
        return trio.current_time() - session.bound_at

    async def _bind(self, session: Session) -> bool:
        hub = self._hub
        config = hub.config
        bind = Bind(
            sequence=session.conn.next_sequence(),
            mode=session.mode,
            system_id=config.system_id,
            password=config.password,
            system_type=config.system_type,
        )
        try:
            pending = await session.request(bind)
        except SmppError as exc:
            hub.log.error("bind_not_sent", error=str(exc))
            return False
        except WRITE_ERRORS:
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
        hub.mode_state[session.mode] = "bound"
        hub.log.info("link_bound", mode=session.mode.value, smsc_system_id=response.system_id)
        hub.notify()
        return True

    async def unbind(self, session: Session) -> None:
        """Unbind one session (for stop); closes it whatever the outcome."""
        if session.closed:
            return
        try:
            pending = await session.request(Unbind(sequence=session.conn.next_sequence()))
        except (SmppError, *WRITE_ERRORS):
            return
        await pending.done.wait()
        if isinstance(pending.response, UnbindResp):
            self._hub.log.info("link_unbound", mode=session.mode.value, initiator="esme")
            session.close("stopped")
