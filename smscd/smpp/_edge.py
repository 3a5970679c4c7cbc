"""The edge: every field of an SMSC's PDU that the daemon uses, checked once.

Theory of operation
-------------------
The codec decodes what is on the wire faithfully: C-strings keep octets >= 0x80 as
lone surrogates (``surrogateescape``) and come out as long as the SMSC wrote them,
message bodies stay bytes of any length the PDU holds. That is right for a codec
and wrong for everything downstream: a lone surrogate cannot be written to the
store, a 30-octet source_addr cannot be the destination of the reply, a
thousand-digit id cannot be a number. So an ESME :class:`Connection` passes each
deliver_sm, submit_sm_resp and bind_resp it receives through this module before
handing it out, and the rest of the daemon trusts what it gets.

Strict only where the daemon could not store or answer an MO; lenient elsewhere,
because real SMSCs fill fields in ways no specification allows:

* **Refused** (:class:`EdgeRefusal`; the connection answers the deliver_sm with a
  ``deliver_sm_resp`` carrying the status, and the bind stays up):

  - an MO's ``source_addr`` that is empty, longer than :data:`MAX_ADDRESS_OCTETS`
    or not printable ASCII (0x20-0x7E): ESME_RINVSRCADR. The reply goes there.
  - an MO's ``destination_addr`` longer than 20 octets or not printable ASCII:
    ESME_RINVDSTADR.
  - a message body (``short_message``, or ``message_payload`` when that is
    empty, as the assembler and the receipt parser read it) over
    :data:`MAX_MESSAGE_OCTETS`, MO or receipt: ESME_RINVMSGLEN.

* **Normalised** (the event comes out changed, never refused):

  - ``service_type``, ``schedule_delivery_time`` and ``validity_period`` of any
    deliver_sm, the addresses of a receipt (not stored, not answered) and the
    ``system_id`` of a bind_resp: every octet outside printable ASCII becomes
    ``?`` and the value is cut to its SMPP 3.4 maximum.
  - the ``message_id`` of a submit_sm_resp: :func:`safe_message_id` (surrounding
    whitespace dropped, other octets written ``\\xNN``, at most 64 characters).

What is *inside* a body is checked where it is read: ``decode_short_message``
never returns a lone surrogate or a NUL, and ``parse_receipt`` makes ids, stat
and err safe the same way.

Messages of :class:`EdgeRefusal` name the field and its length, never its value
(a source_addr is a phone number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from smscd.smpp._receipts import is_receipt, safe_message_id
from smscd.smpp._status import CommandStatus

if TYPE_CHECKING:
    from smscd.smpp._events import BindResp, DeliverSm, SubmitSmResp, Tlv

__all__ = [
    "MAX_ADDRESS_OCTETS",
    "MAX_MESSAGE_OCTETS",
    "EdgeRefusal",
    "check_bind_resp",
    "check_deliver_sm",
    "check_submit_sm_resp",
]

#: source_addr and destination_addr: 21 octets with the NUL (SMPP 3.4 §4.6.1).
MAX_ADDRESS_OCTETS: Final = 20
#: The longest message body a deliver_sm may carry. A single SMS holds at most 160
#: GSM-7 characters (160 octets unpacked, as SMPP carries them) or 140 octets;
#: short_message itself stops at 254. An SMSC that hands over a whole
#: concatenated message in message_payload needs about 153 octets per GSM-7 part
#: and 134 per UCS-2 part, so 2000 octets hold 13 GSM-7 or 14 UCS-2 parts -- far
#: beyond a reset request (``BH MK`` and ten digits) or a delivery receipt (about
#: 100-200 octets). A longer body is refused instead of stored and decoded.
MAX_MESSAGE_OCTETS: Final = 2000
#: SMPP 3.4 maxima, without the NUL, of the C-strings that are only normalised.
_MAX_SERVICE_TYPE: Final = 5
_MAX_TIME: Final = 16
_MAX_SYSTEM_ID: Final = 15

_TAG_MESSAGE_PAYLOAD: Final = 0x0424


class EdgeRefusal(Exception):
    """Internal: a field the daemon cannot use; carries the status to answer with."""

    def __init__(self, msg: str, status: CommandStatus) -> None:
        super().__init__(msg)
        self.status = status


def _printable(value: str, limit: int) -> bool:
    """True when ``value`` is printable ASCII of at most ``limit`` octets."""
    return len(value) <= limit and value.isascii() and value.isprintable()


def _normalised(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` octets, every octet outside 0x20-0x7E as ``?``."""
    if _printable(value, limit):
        return value
    return "".join(ch if " " <= ch <= "~" else "?" for ch in value[:limit])


def _body(tlvs: tuple[Tlv, ...]) -> bytes:
    for tlv in tlvs:
        if tlv.tag == _TAG_MESSAGE_PAYLOAD:
            return tlv.value
    return b""


def _check_address(name: str, value: str, status: CommandStatus, *, empty_ok: bool) -> None:
    if not value and not empty_ok:
        raise EdgeRefusal(f"{name} is empty", status)
    if len(value) > MAX_ADDRESS_OCTETS:
        raise EdgeRefusal(
            f"{name} of {len(value)} octets is longer than {MAX_ADDRESS_OCTETS}", status
        )
    if not (value.isascii() and value.isprintable()):
        raise EdgeRefusal(f"{name} holds an octet outside printable ASCII", status)


def check_deliver_sm(deliver: DeliverSm) -> DeliverSm:
    """The deliver_sm as the daemon may use it, or EdgeRefusal (module docstring)."""
    source = deliver.source_addr
    destination = deliver.destination_addr
    service_type = deliver.service_type
    schedule = deliver.schedule_delivery_time
    validity = deliver.validity_period
    body = deliver.short_message or _body(deliver.tlvs)
    if (
        0 < len(source) <= MAX_ADDRESS_OCTETS
        and len(destination) <= MAX_ADDRESS_OCTETS
        and len(service_type) <= _MAX_SERVICE_TYPE
        and len(schedule) <= _MAX_TIME
        and len(validity) <= _MAX_TIME
        and len(body) <= MAX_MESSAGE_OCTETS
    ):
        joined = source + destination + service_type + schedule + validity
        if joined.isascii() and joined.isprintable():
            return deliver  # the common case: nothing to refuse, nothing to change
    if not is_receipt(deliver):
        _check_address("source_addr", source, CommandStatus.ESME_RINVSRCADR, empty_ok=False)
        _check_address(
            "destination_addr", destination, CommandStatus.ESME_RINVDSTADR, empty_ok=True
        )
    if len(body) > MAX_MESSAGE_OCTETS:
        raise EdgeRefusal(
            f"message of {len(body)} octets is longer than {MAX_MESSAGE_OCTETS}",
            CommandStatus.ESME_RINVMSGLEN,
        )
    normalised = attrs.evolve(
        deliver,
        service_type=_normalised(service_type, _MAX_SERVICE_TYPE),
        schedule_delivery_time=_normalised(schedule, _MAX_TIME),
        validity_period=_normalised(validity, _MAX_TIME),
        source_addr=_normalised(source, MAX_ADDRESS_OCTETS),
        destination_addr=_normalised(destination, MAX_ADDRESS_OCTETS),
    )
    return deliver if normalised == deliver else normalised


def check_submit_sm_resp(response: SubmitSmResp) -> SubmitSmResp:
    """The submit_sm_resp with a safe message_id (never refused)."""
    message_id = safe_message_id(response.message_id)
    if message_id == response.message_id:
        return response
    return attrs.evolve(response, message_id=message_id)


def check_bind_resp(response: BindResp) -> BindResp:
    """The bind_resp with a printable system_id (never refused)."""
    system_id = response.system_id
    if _printable(system_id, _MAX_SYSTEM_ID):
        return response
    return attrs.evolve(response, system_id=_normalised(system_id, _MAX_SYSTEM_ID))
