"""The reader of each connection the simulated SMSC accepts.

One task per TCP connection owns ``receive_some()`` and handles every inbound PDU
in order: binds are checked against the one account, submit_sm go to the submit
side, enquire_link and unbind are answered here, and responses fill the slots
their requests wait in. A PDU the core cannot take is answered with the reply the
core prepared (a generic_nack or the fitting ``*_resp``) unless the SMSC is a
black hole.

The reader does not wait for each of its own answers: it queues them and writes
them together once it has handled everything one read brought in. An SMSC stands
in for a machine of its own; this keeps its per-PDU cost (and the syscalls the
ESME must make to read it) low on a machine the ESME shares.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Final, assert_never

import trio

from smscd.simulator._session import RESPONSE_BIT
from smscd.smpp import (
    Bind,
    BindResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    LocalProtocolError,
    NeedData,
    PduRejected,
    RemoteProtocolError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)

if TYPE_CHECKING:
    from smscd.simulator._hub import Hub
    from smscd.simulator._session import Session
    from smscd.simulator._submit import SubmitSide
    from smscd.smpp import Event

__all__ = ["SMSC_SYSTEM_ID", "ConnectionServer"]

#: The system_id the SMSC names itself with in bind responses.
SMSC_SYSTEM_ID: Final = "smscsim"
_RECEIVE_SIZE: Final = 65536
_GENERIC_NACK_ID: Final = 0x80000000


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


class ConnectionServer:
    """Serves each accepted connection (see the module docstring)."""

    def __init__(self, hub: Hub, submits: SubmitSide) -> None:
        self._hub = hub
        self._submits = submits

    async def serve(self, stream: trio.SocketStream) -> None:
        hub = self._hub
        session = hub.new_session(stream)
        hub.emit("connection_opened", session=session.id, peer=_peer(stream))
        reason = "closed by peer"
        try:
            reason = await self._read_loop(session)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reason = "connection lost" if not session.closed else "closed by simulator"
        finally:
            session.close()
            with trio.CancelScope(shield=True):
                await stream.aclose()
            hub.emit("connection_closed", session=session.id, reason=reason)

    async def _read_loop(self, session: Session) -> str:
        hub = self._hub
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
                    if exc.reply is not None and not hub.black_hole:
                        await session.send(exc.reply)
                    continue
                except RemoteProtocolError as exc:
                    hub.emit("protocol_error", session=session.id, error=str(exc))
                    return f"protocol error: {exc}"
                except LocalProtocolError:
                    # A write failed in another task (send_failed): the connection is dead.
                    return "connection lost"
                if isinstance(event, NeedData):
                    break
                await self._handle(session, event)
                if session.closed:
                    return "closed by simulator"
            # The answers queued while handling this read, in one write.
            await session.flush()
            if not data:
                return "closed by peer"

    def _on_header(self, session: Session, command_id: int, status: int, sequence: int) -> None:
        """Any response to a hand-made PDU, whether or not the core can decode it."""
        raw = session.raw_pending.get(sequence)
        if raw is not None and command_id & RESPONSE_BIT:
            raw.resolve(command_id, status)
            if command_id == _GENERIC_NACK_ID:
                self._hub.generic_nacks_received.append(status)
            self._hub.notify()

    async def _handle(self, session: Session, event: Event) -> None:
        hub = self._hub
        match event:
            case Bind():
                await self._on_bind(session, event)
            case SubmitSm():
                await self._submits.on_submit(session, event)
            case EnquireLink():
                hub.enquire_links_received += 1
                if not hub.enquire_link_silent and not await hub.intercepted(session, event):
                    session.queue(EnquireLinkResp(sequence=event.sequence))
            case Unbind():
                await self._on_unbind(session, event)
            case DeliverSm():
                # An ESME may not send deliver_sm to an SMSC.
                await session.send(
                    GenericNack(
                        sequence=event.sequence, command_status=CommandStatus.ESME_RINVCMDID
                    )
                )
            case GenericNack():
                pending = session.pending.pop(event.sequence, None)
                if pending is not None:
                    pending.resolve(event)
                hub.generic_nacks_received.append(event.command_status)
                hub.notify()
            case UnbindResp() | EnquireLinkResp() | DeliverSmResp():
                if isinstance(event, UnbindResp):
                    hub.unbind_responses_received += 1
                pending = session.pending.pop(event.sequence, None)
                if pending is not None:
                    pending.resolve(event)
            case BindResp() | SubmitSmResp():
                pass  # the SMSC never sends what these would answer
            case _:
                assert_never(event)

    async def _on_bind(self, session: Session, event: Bind) -> None:
        hub = self._hub
        if await hub.intercepted(session, event):
            return
        config = hub.config
        if event.system_id != config.system_id:
            status = CommandStatus.ESME_RINVSYSID
        elif not hmac.compare_digest(
            event.password.encode("utf-8", "surrogateescape"),
            config.password.encode("utf-8", "surrogateescape"),
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
        if not await session.send(response):
            return
        if status != CommandStatus.ESME_ROK:
            hub.emit(
                "bind_failed",
                session=session.id,
                mode=event.mode.value,
                system_id=event.system_id,
                status=int(status),
            )
            return
        session.mode = event.mode
        session.system_id = event.system_id
        hub.emit(
            "bind_succeeded", session=session.id, mode=event.mode.value, system_id=event.system_id
        )
        hub.notify_bound()

    async def _on_unbind(self, session: Session, event: Unbind) -> None:
        hub = self._hub
        hub.unbinds_received += 1
        hub.emit("unbind_received", session=session.id)
        if hub.unbind_silent or await hub.intercepted(session, event):
            return
        await session.send(UnbindResp(sequence=event.sequence))
        session.close()
        await trio.aclose_forcefully(session.stream)
