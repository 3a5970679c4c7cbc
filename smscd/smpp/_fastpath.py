"""The codec's fast paths: struct encoders and straight-line decoders.

Theory of operation
-------------------
smpplib's generic machinery costs tens of microseconds per PDU (``make_pdu``
walks every optional field a command knows), which on the hot PDUs of a busy
bind is a large share of the daemon's CPU. This module encodes the PDUs of the
traffic (submit_sm, deliver_sm, their responses, enquire_link, unbind and their
responses, generic_nack) with ``struct`` and ``bytes`` alone, and decodes
submit_sm, deliver_sm and submit_sm_resp by reading their fields in one
straight line.

Each fast path handles only the common case -- ASCII strings within their
limits, integers within their widths, a body that is plainly well formed --
and returns ``None`` for anything else. An encoder may also raise one of
:data:`UNFIT` (a value of the wrong type or out of range met by ``bytes()`` or
``struct``). Either way ``_codec.encode``/``_codec.decode`` hand the PDU to the
reference path (smpplib for encoding, the table-driven walker of ``_layout``
for decoding), so every error, and every odd-but-legal value, is still
produced by the reference. What a fast path does return is byte-for-byte (or
field-for-field) what the reference gives; ``tests/property/test_smpp_fastpath.py``
holds them equal.

The field limits written out below (5, 20, 16, 254, 64 octets) are SMPP 3.4's,
the same that smpplib's tables give the reference path.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from smscd.smpp._events import (
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Event,
    GenericNack,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
)
from smscd.smpp._framing import HEADER, HEADER_SIZE
from smscd.smpp._layout import CommandId, read_tlvs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FAST_ENCODERS",
    "HEADER_PACK",
    "UNFIT",
    "decode_sm",
    "decode_submit_sm_resp",
    "fast_encoder",
]

HEADER_PACK: Final = HEADER.pack
_TLV_HEAD_PACK: Final = struct.Struct(">HH").pack
#: What an encoder may raise on a value outside the common case.
UNFIT: Final = (struct.error, ValueError, TypeError, AttributeError)
_NUL: Final = b"\0"


# --- encoding -----------------------------------------------------------------


def _fast_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    parts: list[bytes] = []
    for tlv in tlvs:
        value = tlv.value
        parts.append(_TLV_HEAD_PACK(tlv.tag, len(value)))  # struct.error when out of range
        parts.append(value)
    return b"".join(parts)


def _fast_sm(command_id: int, event: SubmitSm | DeliverSm) -> bytes | None:
    service_type = event.service_type.encode("ascii")
    source_addr = event.source_addr.encode("ascii")
    destination_addr = event.destination_addr.encode("ascii")
    schedule = event.schedule_delivery_time.encode("ascii")
    validity = event.validity_period.encode("ascii")
    short_message = event.short_message
    if (
        len(service_type) > 5
        or len(source_addr) > 20
        or len(destination_addr) > 20
        or len(schedule) > 16
        or len(validity) > 16
        or len(short_message) > 254
        or _NUL in service_type
        or _NUL in source_addr
        or _NUL in destination_addr
        or _NUL in schedule
        or _NUL in validity
        or type(short_message) is not bytes
    ):
        return None
    body = b"".join(
        (
            service_type,
            _NUL,
            bytes((event.source_addr_ton, event.source_addr_npi)),
            source_addr,
            _NUL,
            bytes((event.dest_addr_ton, event.dest_addr_npi)),
            destination_addr,
            _NUL,
            bytes((event.esm_class, event.protocol_id, event.priority_flag)),
            schedule,
            _NUL,
            validity,
            _NUL,
            bytes(
                (
                    event.registered_delivery,
                    event.replace_if_present_flag,
                    event.data_coding,
                    event.sm_default_msg_id,
                    len(short_message),
                )
            ),
            short_message,
            _fast_tlvs(event.tlvs) if event.tlvs else b"",
        )
    )
    return HEADER_PACK(HEADER_SIZE + len(body), command_id, 0, event.sequence) + body


def _fast_submit_sm(event: Event) -> bytes | None:
    assert isinstance(event, SubmitSm)
    return _fast_sm(CommandId.SUBMIT_SM, event)


def _fast_deliver_sm(event: Event) -> bytes | None:
    assert isinstance(event, DeliverSm)
    return _fast_sm(CommandId.DELIVER_SM, event)


def _fast_submit_sm_resp(event: Event) -> bytes | None:
    assert isinstance(event, SubmitSmResp)
    status = event.command_status
    if status and not event.message_id:
        return HEADER_PACK(HEADER_SIZE, CommandId.SUBMIT_SM_RESP, status, event.sequence)
    message_id = event.message_id.encode("ascii")
    if len(message_id) > 64 or _NUL in message_id:
        return None
    return (
        HEADER_PACK(
            HEADER_SIZE + len(message_id) + 1, CommandId.SUBMIT_SM_RESP, status, event.sequence
        )
        + message_id
        + _NUL
    )


def _fast_deliver_sm_resp(event: Event) -> bytes | None:
    assert isinstance(event, DeliverSmResp)
    # message_id is "unused, set to NULL" (§4.6.2): one NUL octet of body.
    return (
        HEADER_PACK(
            HEADER_SIZE + 1, CommandId.DELIVER_SM_RESP, event.command_status, event.sequence
        )
        + _NUL
    )


def _fast_header_only(command_id: CommandId) -> Callable[[Event], bytes | None]:
    def fast(event: Event) -> bytes | None:
        status = getattr(event, "command_status", 0)
        return HEADER_PACK(HEADER_SIZE, command_id, status, event.sequence)

    return fast


#: The fast encoder of each event type it covers: the PDU, or None (or one of
#: UNFIT raised) when the event is not the common case.
FAST_ENCODERS: Final[dict[type[Event], Callable[[Event], bytes | None]]] = {
    SubmitSm: _fast_submit_sm,
    DeliverSm: _fast_deliver_sm,
    SubmitSmResp: _fast_submit_sm_resp,
    DeliverSmResp: _fast_deliver_sm_resp,
    EnquireLink: _fast_header_only(CommandId.ENQUIRE_LINK),
    EnquireLinkResp: _fast_header_only(CommandId.ENQUIRE_LINK_RESP),
    Unbind: _fast_header_only(CommandId.UNBIND),
    UnbindResp: _fast_header_only(CommandId.UNBIND_RESP),
    GenericNack: _fast_header_only(CommandId.GENERIC_NACK),
}
#: ``FAST_ENCODERS.get``, bound once: the fast encoder of an event type, or None.
#: (A module that imports the dict itself pays for a bound method on every call.)
fast_encoder: Final = FAST_ENCODERS.get


# --- decoding -----------------------------------------------------------------


def decode_sm(
    cls: type[SubmitSm] | type[DeliverSm], seq: int, body: bytes
) -> SubmitSm | DeliverSm | None:
    """submit_sm/deliver_sm by a straight-line reader of the mandatory fields.

    The same walk as ``_layout.read_fields`` over the submit_sm table; None when
    the mandatory part is not plainly well formed (the table-driven walker then
    says what is wrong). Optional parameters are split by ``read_tlvs``, whose
    BodyError propagates as the walker's would.
    """
    find = body.find
    a = find(0)  # end of service_type; source_addr_ton/npi follow
    b = find(0, a + 3) if a >= 0 else -1  # end of source_addr; dest ton/npi follow
    c = find(0, b + 3) if b >= 0 else -1  # end of destination_addr; esm, pid, prio
    d = find(0, c + 4) if c >= 0 else -1  # end of schedule_delivery_time
    e = find(0, d + 1) if d >= 0 else -1  # end of validity_period; 5 octets follow
    if e < 0 or e + 6 > len(body) or e + 6 + body[e + 5] > len(body):
        return None
    end = e + 6 + body[e + 5]
    return cls(
        sequence=seq,
        service_type=body[:a].decode("ascii", "surrogateescape"),
        source_addr_ton=body[a + 1],
        source_addr_npi=body[a + 2],
        source_addr=body[a + 3 : b].decode("ascii", "surrogateescape"),
        dest_addr_ton=body[b + 1],
        dest_addr_npi=body[b + 2],
        destination_addr=body[b + 3 : c].decode("ascii", "surrogateescape"),
        esm_class=body[c + 1],
        protocol_id=body[c + 2],
        priority_flag=body[c + 3],
        schedule_delivery_time=body[c + 4 : d].decode("ascii", "surrogateescape"),
        validity_period=body[d + 1 : e].decode("ascii", "surrogateescape"),
        registered_delivery=body[e + 1],
        replace_if_present_flag=body[e + 2],
        data_coding=body[e + 3],
        sm_default_msg_id=body[e + 4],
        short_message=body[e + 6 : end],
        tlvs=read_tlvs(body, end) if end < len(body) else (),
    )


def decode_submit_sm_resp(status: int, seq: int, body: bytes) -> SubmitSmResp | None:
    """submit_sm_resp in its common forms: one C-string with its NUL and nothing
    after it, or no body at all (an error status). None for anything else."""
    if body.find(0) != len(body) - 1:
        return None
    return SubmitSmResp(
        sequence=seq,
        command_status=status,
        message_id=body[:-1].decode("ascii", "surrogateescape"),
    )
