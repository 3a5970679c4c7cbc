"""The inbound path of a link: deliver_sm in, inbound items out, acks back.

Theory of operation
-------------------
The reader hands every deliver_sm to :meth:`Inbound.on_deliver`. A receipt
becomes an :class:`~smscd.link.InboundReceipt`; the parts of a multi-part MO
are reassembled (``smscd.smpp.MessageAssembler``) and the whole message becomes
one :class:`~smscd.link.InboundMo`. Items go out on the inbound channel; each
carries an :class:`Ack` handle, and the SMSC gets its deliver_sm_resp(s) only
when the caller acks the item. The parts of a multi-part MO are held until the
whole message is acked. Trade-off: a part whose message does not complete
within ``ack_timeout`` is answered 0 (so the SMSC does not time it out and
redeliver it endlessly) and kept only in memory by the assembler (lost if the
daemon dies before the other parts arrive, or after the assembler's max age).
The timer task (``smscd.link._timers``) enforces both deadlines: an item not
acked within ``ack_timeout`` of being handed out is answered ESME_RX_T_APPN.

Flow control: at most ``max_unacked`` deliver_sm are *held* (read and not yet
answered: the parts of items handed out and not acked, plus parts waiting for
the rest of their message), counted over the link's live connections. A
deliver_sm read while that many are held waits in the reader until an answer
frees room: the reader reads nothing meanwhile, so TCP pushes back on the SMSC
(enquire_link and unbind behind it wait too). Each such pause is logged once
(``inbound_paused``, then ``inbound_resumed``) and counted. The inbound channel
holds ``max_unacked`` items, so it has room for every held item; only items of
a connection that has since closed (no longer counted, their answers can no
longer be sent) can fill it, and then the reader waits for the consumer in the
same way. Nothing is dropped and nothing is answered by the link on the
caller's behalf except after ``ack_timeout`` (ESME_RX_T_APPN) or the multi-part
trade-off above. A wait ends when its connection closes (the session's cancel
scope): the deliver_sm is then never answered, and the SMSC delivers it again.
A paused reader cannot see the peer close; the first write after that (an ack,
at the latest the ESME_RX_T_APPN at ``ack_timeout``) fails and closes the
session. So a pause lasts at most about ``ack_timeout`` unless the consumer
stops reading the channel altogether.

Acks are written through the session's group-flush writer. :func:`ack_all`
queues the answers of many items before waiting once per session, so a batch
of acks costs one task and one write.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import attrs
import trio

from smscd.link._hub import status_name
from smscd.link._session import HeldPart
from smscd.link._types import InboundItem, InboundMo, InboundReceipt
from smscd.numbers import mask_msisdn
from smscd.smpp import (
    MessageAssembler,
    ReceiptError,
    is_receipt,
    message_id_keys,
    parse_receipt,
    response_for,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from smscd.link._flush import Outgoing
    from smscd.link._hub import Hub
    from smscd.link._session import Session
    from smscd.smpp import DeliverSm

__all__ = ["Ack", "Inbound", "ack_all", "answer_all"]


@attrs.define(eq=False)
class Ack:
    """The ack handle behind one inbound item: answers its deliver_sm(s) once."""

    inbound: Inbound
    session: Session
    parts: tuple[DeliverSm, ...]
    deadline: float
    done: bool = False
    timed_out: bool = False

    async def ack(self, status: int) -> None:
        queued = self.queue(status)
        if queued:
            await self.session.wait_written(queued[-1])
            self.check_written(queued, status)

    def queue(self, status: int) -> list[Outgoing]:
        """Mark the item answered and queue its deliver_sm_resp(s); the queued
        writes (none if already answered or the session is gone)."""
        hub = self.inbound.hub
        if self.done:
            if self.timed_out:
                hub.log.info(
                    "deliver_sm_ack_late", status=status_name(status), parts=len(self.parts)
                )
            return []
        self.done = True
        session = self.session
        session.held.discard(self)
        self.inbound.answered(session, len(self.parts))
        if not session.held:
            hub.notify()  # stop() may be waiting for the last ack
        if session.closed:
            self._dropped(self.parts[0], status)
            return []
        return [session.enqueue(response_for(part, command_status=status)) for part in self.parts]

    def check_written(self, queued: list[Outgoing], status: int) -> None:
        """Log the first response that did not go out (once its flush is over)."""
        for part, item in zip(self.parts, queued, strict=True):
            if item.error is not None:
                self._dropped(part, status)
                return

    def _dropped(self, part: DeliverSm, status: int) -> None:
        self.inbound.hub.log.warning(
            "deliver_sm_resp_dropped", sequence=part.sequence, status=status_name(status)
        )


async def ack_all(items: Iterable[InboundItem], status: int = 0) -> None:
    """Answer many inbound items with ``status`` at once: every response is
    queued first, then each session writes its share in one flush. Equivalent
    to ``item.ack(status)`` on each (idempotent, never raises for a lost
    connection), without a task and a write per item."""
    handles: list[Ack] = []
    for item in items:
        handle = item._ack_handle
        if isinstance(handle, Ack):
            handles.append(handle)
        else:
            await handle.ack(status)
    await answer_all(handles, status)


async def answer_all(handles: Iterable[Ack], status: int) -> None:
    """Queue the answers of every handle, then wait once per session."""
    batch: list[tuple[Ack, list[Outgoing]]] = []
    for handle in handles:
        queued = handle.queue(status)
        if queued:
            batch.append((handle, queued))
    last: dict[Session, Outgoing] = {}
    for handle, queued in batch:
        last[handle.session] = queued[-1]
    for session, outgoing in last.items():
        await session.wait_written(outgoing)
    for handle, queued in batch:
        handle.check_written(queued, status)


class Inbound:
    """deliver_sm to inbound items, with flow control (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.assembler = MessageAssembler()
        self.send_channel, self.receive_channel = trio.open_memory_channel[InboundItem](
            hub.config.max_unacked
        )
        #: Set (and replaced) when an answer frees room while the reader waits.
        self._room = trio.Event()
        #: Readers waiting for room (one per receiving connection at most).
        self._waiting = 0

    def held(self) -> int:
        """deliver_sm held (read, not answered) on the live connections."""
        return sum(session.unanswered for session in self.hub.sessions.values())

    def answered(self, session: Session, count: int) -> None:
        """``count`` held deliver_sm of ``session`` were answered (or given up)."""
        session.unanswered -= count
        if self._waiting:
            self._room.set()
            self._room = trio.Event()

    @contextlib.contextmanager
    def _pause(self, reason: str) -> Iterator[None]:
        """Log and count one pause of the reader around the wait it wraps (not
        resumed if the wait ends by the connection closing)."""
        hub = self.hub
        hub.counters.inbound_paused += 1
        start = trio.current_time()
        hub.log.warning(
            "inbound_paused", reason=reason, held=self.held(), max_unacked=hub.config.max_unacked
        )
        yield
        hub.log.info(
            "inbound_resumed", reason=reason, paused_for=round(trio.current_time() - start, 3)
        )

    async def _wait_room(self) -> None:
        """Return once fewer than ``max_unacked`` deliver_sm are held."""
        max_unacked = self.hub.config.max_unacked
        if self.held() < max_unacked:
            return
        with self._pause("max_unacked"):
            while self.held() >= max_unacked:
                self._waiting += 1
                try:
                    await self._room.wait()
                finally:
                    self._waiting -= 1

    async def on_deliver(self, session: Session, deliver: DeliverSm) -> None:
        """Turn one deliver_sm into an inbound item (or a held part) and hand it out."""
        await self._wait_room()
        hub = self.hub
        config = hub.config
        now = trio.current_time()
        item: InboundItem
        if is_receipt(deliver):
            try:
                receipt = parse_receipt(deliver)
            except ReceiptError as exc:
                hub.log.warning(
                    "receipt_unparsed",
                    sequence=deliver.sequence,
                    msisdn=mask_msisdn(deliver.source_addr),
                    error=str(exc),
                )
                await session.reply(response_for(deliver))
                return
            hub.counters.receipts_received += 1
            ack = Ack(inbound=self, session=session, parts=(deliver,), deadline=math.inf)
            item = InboundReceipt(
                carrier=config.name,
                receipt=receipt,
                id_keys=message_id_keys(receipt.message_id, config.message_id_format),
                source_addr=deliver.source_addr,
                destination_addr=deliver.destination_addr,
                ack_handle=ack,
            )
            hub.log.debug("receipt_received", stat=receipt.stat)
        else:
            message = self.assembler.feed(deliver, now=now, gsm7_default=config.gsm7_default)
            if message is None:
                deadline = now + config.ack_timeout
                session.waiting_parts[deliver.sequence] = HeldPart(deliver, deadline)
                session.unanswered += 1
                return
            parts = [deliver]
            for sequence in message.sequences:
                part = session.waiting_parts.get(sequence)
                if (
                    sequence != deliver.sequence
                    and part is not None
                    and part.deliver.source_addr == deliver.source_addr
                ):
                    del session.waiting_parts[sequence]
                    parts.append(part.deliver)
            hub.counters.mo_received += 1
            ack = Ack(inbound=self, session=session, parts=tuple(parts), deadline=math.inf)
            item = InboundMo(
                carrier=config.name,
                source_addr=message.source_addr,
                source_addr_ton=message.source_addr_ton,
                source_addr_npi=message.source_addr_npi,
                destination_addr=message.destination_addr,
                text=message.text,
                data_coding=message.data_coding,
                parts=len(message.sequences),
                ack_handle=ack,
            )
            hub.log.info(
                "mo_received", msisdn=mask_msisdn(message.source_addr), parts=len(message.sequences)
            )
        # The parts gathered from waiting_parts are counted already.
        session.unanswered += 1
        try:
            try:
                self.send_channel.send_nowait(item)
            except trio.WouldBlock:
                # Full of items of a closed connection (module docstring).
                with self._pause("channel_full"):
                    await self.send_channel.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # Held all the same: answered ESME_RX_T_APPN at ack_timeout.
            hub.log.warning("inbound_channel_closed", sequence=deliver.sequence)
        except BaseException:
            # Cancelled (the connection closed): never handed out, never answered.
            ack.done = True
            self.answered(session, len(ack.parts))
            raise
        # The caller's ack_timeout runs from when the item is handed out (the
        # caller may have acked it already, while the reader waited to send it).
        if not ack.done:
            ack.deadline = trio.current_time() + config.ack_timeout
            session.held.add(ack)
