"""The submit side of the simulated SMSC: accept or refuse each submit_sm, number
the accepted messages, answer at once or late, and send the receipts asked for.

Answers are queued for the reader to write with the rest of what one read
brought in; with ``delay_submit_responses`` each answer waits on its own timer in
a task of its own, so the reader goes on reading and a window of N submits is
answered N at a time, not one after the other. Each session counts the submit_sm
it has received and not yet answered (an answer counts from the moment a flush
takes it for the wire, before the ESME can see it); the most ever seen is
``max_outstanding_submits``, what proves an ESME kept to its window.

Receipts are one task each: sleep ``receipt_delay``, wait for a bound receiver of
the same system_id, deliver, and try again (bounded) when the connection drops
before the deliver_sm_resp or the ESME answers with a temporary error.
"""

from __future__ import annotations

import datetime
import functools
import random
from typing import TYPE_CHECKING, Final

import attrs
import trio

from smscd.simulator._hub import TEMPORARY_STATUSES
from smscd.simulator._receipt import ReceiptSpec, build_receipt, format_message_id
from smscd.smpp import CommandStatus, SubmitSm, SubmitSmResp, decode_short_message

if TYPE_CHECKING:
    from smscd.simulator._hub import Hub
    from smscd.simulator._session import Session

__all__ = ["RECEIPT_ATTEMPTS", "SubmitSide", "SubmittedSm", "same_number"]

#: Delivery attempts per receipt (connection lost or temporary error each count one).
RECEIPT_ATTEMPTS: Final = 5
_ESM_UDHI: Final = 0x40
_TAG_MESSAGE_PAYLOAD: Final = 0x0424


@attrs.frozen(kw_only=True)
class SubmittedSm:
    """One submit_sm the SMSC accepted."""

    event: SubmitSm
    message_id: str
    #: short_message (or message_payload) decoded per data_coding, UDH removed.
    text: str
    #: ``trio.current_time()`` when the PDU was read.
    received_at: float
    session_id: int


def same_number(a: str, b: str) -> bool:
    """Whether two renderings of a phone number are the same subscriber: national
    (``0...``) and international (``84...``, ``+84...``) forms compare equal."""
    digits_a = "".join(c for c in a if c.isdigit())
    digits_b = "".join(c for c in b if c.isdigit())
    if len(digits_a) >= 9 and len(digits_b) >= 9:
        return digits_a[-9:] == digits_b[-9:]
    return digits_a == digits_b


def _submit_text(event: SubmitSm) -> str:
    payload = event.short_message
    if not payload:
        for tlv in event.tlvs:
            if tlv.tag == _TAG_MESSAGE_PAYLOAD:
                payload = tlv.value
                break
    if event.esm_class & _ESM_UDHI and payload:
        payload = payload[1 + payload[0] :]
    return decode_short_message(event.data_coding, payload)


def _answered(session: Session) -> None:
    """A submit_sm_resp is going on the wire: one submit less outstanding."""
    session.outstanding_submits -= 1


def _now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


class SubmitSide:
    """submit_sm handling and its fault switches (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        #: Every submit_sm accepted, in arrival order.
        self.submitted: list[SubmittedSm] = []
        #: The most submit_sm one session had received and not yet answered at once.
        self.max_outstanding = 0
        self._next_message_number = random.randrange(0x10000000, 0x40000000)
        # Fault switches.
        self.throttle_remaining = 0
        self.throttle_status: int = CommandStatus.ESME_RTHROTTLED
        self.response_delay = 0.0
        self.no_response = False

    # --- observation -------------------------------------------------------------

    async def wait_submitted(self, n: int) -> list[SubmittedSm]:
        while len(self.submitted) < n:
            await self._hub.changed.wait()
        return self.submitted[:n]

    async def wait_submitted_to(self, number: str, *, start: int = 0) -> SubmittedSm:
        while True:
            for submitted in self.submitted[start:]:
                if same_number(submitted.event.destination_addr, number):
                    return submitted
            start = max(start, len(self.submitted))
            await self._hub.changed.wait()

    # --- handling ----------------------------------------------------------------

    async def on_submit(self, session: Session, event: SubmitSm) -> None:
        hub = self._hub
        session.outstanding_submits += 1
        self.max_outstanding = max(self.max_outstanding, session.outstanding_submits)
        if await hub.intercepted(session, event):
            if not hub.black_hole:
                session.outstanding_submits -= 1
            return
        if self.no_response:
            return
        text = _submit_text(event)
        message_id = ""
        if self.throttle_remaining > 0:
            self.throttle_remaining -= 1
            status = self.throttle_status
        else:
            status = CommandStatus.ESME_ROK
            message_id = self._accept(session, event, text)
        hub.emit(
            "submit_sm_received",
            session=session.id,
            source_addr=event.source_addr,
            destination_addr=event.destination_addr,
            text=text,
            message_id=message_id,
            status=int(status),
        )
        response = SubmitSmResp(
            sequence=event.sequence, command_status=status, message_id=message_id
        )
        if self.response_delay > 0:
            hub.nursery.start_soon(self._answer_later, session, response)
        else:
            # Written by the reader after this read's other PDUs are handled.
            session.queue(response, on_taken=functools.partial(_answered, session))

    def _accept(self, session: Session, event: SubmitSm, text: str) -> str:
        number = self._next_message_number
        self._next_message_number += 1
        config = self._hub.config
        message_id = format_message_id(number, config.submit_id_format)
        self.submitted.append(
            SubmittedSm(
                event=event,
                message_id=message_id,
                text=text,
                received_at=trio.current_time(),
                session_id=session.id,
            )
        )
        self._hub.notify()
        if event.registered_delivery & 0x01:
            spec = ReceiptSpec(
                message_id=message_id,
                receipt_id=format_message_id(number, config.receipt_id_format),
                stat=config.receipt_stat,
                handset=event.destination_addr,
                handset_ton=event.dest_addr_ton,
                handset_npi=event.dest_addr_npi,
                short_code=event.source_addr,
                short_code_ton=event.source_addr_ton,
                short_code_npi=event.source_addr_npi,
                text=text,
                submitted_at=_now(),
                with_tlvs=config.receipt_tlvs,
            )
            self._hub.nursery.start_soon(self._receipt_task, spec, session.system_id)
        return message_id

    async def _answer_later(self, session: Session, response: SubmitSmResp) -> None:
        await trio.sleep(self.response_delay)
        item = session.queue(response, on_taken=functools.partial(_answered, session))
        if item.done:
            _answered(session)  # the session closed meanwhile: never taken
        else:
            await session.written(item)

    # --- receipts ----------------------------------------------------------------

    async def _receipt_task(self, spec: ReceiptSpec, system_id: str) -> None:
        hub = self._hub
        await trio.sleep(hub.config.receipt_delay)
        for _attempt in range(RECEIPT_ATTEMPTS):
            session = await hub.wait_receiver(system_id)
            status = await hub.deliver(
                session, lambda sequence: build_receipt(spec, sequence=sequence, done_at=_now())
            )
            if status is not None:
                hub.emit(
                    "receipt_sent",
                    session=session.id,
                    message_id=spec.message_id,
                    receipt_id=spec.receipt_id,
                    stat=spec.stat,
                    status=status,
                )
            if status is not None and status not in TEMPORARY_STATUSES:
                return
            await trio.sleep(max(hub.config.receipt_delay, 0.05))
