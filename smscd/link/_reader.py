"""The reader task of one session: the only caller of ``receive_some()``.

It feeds what it reads to the sans-I/O core and handles each event in order:

* responses resolve the request waiting for them (a response nobody waits for
  is logged ``response_unmatched``);
* enquire_link and unbind are answered here, never behind an application queue
  that could fill up (a blocked reader lets the SMSC drop the bind); an unbind
  from the SMSC closes the session;
* deliver_sm go to the inbound path (``smscd.link._inbound``), the one place
  where the reader may wait: for room under ``max_unacked``;
* a PDU the core rejects is answered with the reply the core prepared
  (``pdu_rejected``); a request an SMSC may not send gets generic_nack.

A framing or protocol error, the peer closing, or a failed write ends the
session with the matching reason; the supervisor reconnects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, assert_never

import trio

from smscd.link._hub import status_name
from smscd.link._session import WRITE_ERRORS
from smscd.smpp import (
    Bind,
    BindResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    NeedData,
    PduRejected,
    RemoteProtocolError,
    SmppError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    response_for,
)

if TYPE_CHECKING:
    from smscd.link._hub import Hub
    from smscd.link._inbound import Inbound
    from smscd.link._session import Session
    from smscd.smpp import Event

__all__ = ["run_reader"]

#: Bytes asked of receive_some() at a time.
_RECEIVE_SIZE: Final = 65536


async def run_reader(hub: Hub, inbound: Inbound, session: Session) -> None:
    """Read until the session ends (see the module docstring)."""
    log = hub.log
    conn = session.conn
    while True:
        try:
            data = await session.stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            session.close("connection_lost")
            return
        session.last_received = trio.current_time()
        try:
            conn.receive_data(data)
            while True:
                try:
                    event = conn.next_event()
                except PduRejected as exc:
                    log.warning(
                        "pdu_rejected",
                        sequence=exc.sequence,
                        status=status_name(exc.command_status),
                        error=str(exc),
                    )
                    if exc.reply is not None:
                        try:
                            await session.send(exc.reply)
                        except WRITE_ERRORS:
                            return
                    continue
                if isinstance(event, NeedData):
                    break
                await _dispatch(hub, inbound, session, event)
        except FramingError as exc:
            log.warning("framing_error_received", error=str(exc))
            session.close("framing_error")
            return
        except RemoteProtocolError as exc:
            log.warning("protocol_error_received", error=str(exc))
            session.close("protocol_error")
            return
        except SmppError:
            # LocalProtocolError: a write failed meanwhile (send_failed), the
            # core refuses further reads; the session is already closing.
            session.close("write_failed")
            return
        if not data:
            session.close("connection_closed")
            return


async def _dispatch(hub: Hub, inbound: Inbound, session: Session, event: Event) -> None:
    match event:
        case (
            BindResp()
            | UnbindResp()
            | EnquireLinkResp()
            | SubmitSmResp()
            | DeliverSmResp()
            | GenericNack()
        ):
            pending = session.pending.pop(event.sequence, None)
            if pending is None:
                hub.log.warning(
                    "response_unmatched",
                    command=type(event).__name__,
                    sequence=event.sequence,
                    status=status_name(event.command_status),
                )
            else:
                pending.resolve(event)
        case EnquireLink():
            await session.reply(response_for(event))
        case Unbind():
            await session.reply(response_for(event))
            hub.log.warning("link_unbound", mode=session.mode.value, initiator="smsc")
            session.close("unbound_by_smsc")
        case DeliverSm():
            await inbound.on_deliver(session, event)
        case Bind() | SubmitSm():
            # Not a request an SMSC may send to an ESME.
            await session.reply(
                GenericNack(sequence=event.sequence, command_status=CommandStatus.ESME_RINVCMDID)
            )
        case _:
            assert_never(event)
