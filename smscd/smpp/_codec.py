"""The PDU codec: our attrs events to SMPP 3.4 bytes and back.

Theory of operation
-------------------
This is the only module that imports smpplib (STYLE L4), and it uses only
``smpplib.smpp``, ``smpplib.command`` and ``smpplib.consts``:

* **Encoding** builds the smpplib command object with
  ``smpplib.smpp.make_pdu(name, client=..., sequence=..., allow_unknown_opt_params=True)``
  and lets it generate the header and the mandatory body. Three smpplib traps are
  handled here: ``sequence=`` is ignored by ``make_pdu`` (we set ``pdu.sequence``
  afterwards), every command asks its ``client`` for a sequence (we pass a
  throw-away :class:`_FixedSequence`, never a shared counter), and smpplib silently
  truncates an over-long C-string or dies with a bare ``struct.error`` on an
  over-long short_message (we validate every field first and raise
  :class:`LocalProtocolError`, the caller's bug). Optional parameters are appended
  by us from ``event.tlvs`` exactly as given, so unknown/vendor tags survive a
  round trip, and the header's command_length is patched to match.

* **Decoding** reads the mandatory fields with a strict walker driven by smpplib's
  own field tables (``params_order`` and ``Param`` type/size), then splits the
  optional parameters by tag and length ourselves. smpplib's ``parse_params`` is
  not used on untrusted bytes because it mis-parses instead of failing: a C-string
  without its NUL makes ``find()`` return -1 and rewinds to offset 0, integer TLVs
  ignore their stated length (a 1-byte ``user_message_reference`` misaligns
  everything after it), a TLV it knows but not for that PDU is a ``KeyError`` and
  truncation is a bare ``struct.error``. Every failure becomes
  :class:`PduRejected` carrying the sequence read from the raw header and a
  ready-to-send reply (``generic_nack``), or no reply for a response.

* **Fast paths.** smpplib's generic machinery costs tens of microseconds per PDU
  (``make_pdu`` walks every optional field a command knows), which on the hot
  PDUs of a busy bind is a large share of the daemon's CPU. So ``encode`` first
  tries a hand-written ``struct``/``bytes`` encoder for the PDUs of the traffic
  (submit_sm, deliver_sm, their responses, enquire_link, unbind and their
  responses, generic_nack). It handles only the common case -- ASCII strings
  within their limits, integers within their widths -- and gives up (returns
  None or raises internally) on anything else, which then goes through the
  smpplib path above: so every error, and every odd-but-legal value, is still
  produced by the reference encoder. Its output is byte-identical to that path;
  ``reference_encode`` stays available and a property test holds them equal.
  Likewise ``decode`` reads submit_sm/deliver_sm with a straight-line reader
  that falls back to the table-driven walker (``reference_decode``) whenever the
  body is not plainly well formed, so every rejection still comes from it.

Strings (addresses, ids) are ASCII; bytes >= 0x80 travel as lone surrogates
(``surrogateescape``) so that decode and encode are exact inverses. Message bodies
stay ``bytes``.

Leniency, chosen from what carriers really send: a *response* may stop at any field
boundary (``submit_sm_resp`` with no body on error, ``deliver_sm_resp`` without its
NUL), its last C-string may lack a NUL, and a response with a non-zero status
whose body is garbage is accepted with empty fields -- the status is what matters.
Trailing bytes after the body of PDUs that have no optional parameters in SMPP 3.4
are ignored. Requests must carry every mandatory field.
"""

from __future__ import annotations

import enum
import struct
from typing import TYPE_CHECKING, Any, Final, assert_never

import attrs
import smpplib.command
import smpplib.consts
import smpplib.smpp

from smscd.smpp._errors import FramingError, LocalProtocolError, PduRejected
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
    Tlv,
    Unbind,
    UnbindResp,
)
from smscd.smpp._framing import HEADER, HEADER_SIZE
from smscd.smpp._status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CommandId",
    "decode",
    "encode",
    "encode_generic_nack",
    "reference_decode",
    "reference_encode",
]


class CommandId(enum.IntEnum):
    """SMPP 3.4 command_id values (spec §5.1.2)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


#: Set in every response command_id.
RESPONSE_BIT: Final = 0x80000000

_BIND_IDS: Final = {
    BindMode.TRANSMITTER: CommandId.BIND_TRANSMITTER,
    BindMode.RECEIVER: CommandId.BIND_RECEIVER,
    BindMode.TRANSCEIVER: CommandId.BIND_TRANSCEIVER,
}
_BIND_RESP_IDS: Final = {
    BindMode.TRANSMITTER: CommandId.BIND_TRANSMITTER_RESP,
    BindMode.RECEIVER: CommandId.BIND_RECEIVER_RESP,
    BindMode.TRANSCEIVER: CommandId.BIND_TRANSCEIVER_RESP,
}
_MODE_BY_ID: Final[dict[int, BindMode]] = {
    **{cid: mode for mode, cid in _BIND_IDS.items()},
    **{cid: mode for mode, cid in _BIND_RESP_IDS.items()},
}


# --- field tables, taken from smpplib's command classes -------------------------


@attrs.frozen
class _Field:
    name: str
    kind: str  # "int" | "cstr" | "ostr"
    #: int: width in bytes; cstr: max length including the NUL; ostr: max length.
    size: int
    len_field: str = ""


def _mandatory_fields(cls: Any) -> tuple[_Field, ...]:
    fields: list[_Field] = []
    for name in cls.params_order:
        if name in smpplib.consts.OPTIONAL_PARAMS:
            continue  # optional parameters are ours to parse
        param = cls.params[name]
        if param.type is int:
            fields.append(_Field(name, "int", param.size))
        elif param.type is str:
            fields.append(_Field(name, "cstr", param.max))
        else:
            fields.append(_Field(name, "ostr", param.max, param.len_field))
    return tuple(fields)


_BIND_FIELDS: Final = _mandatory_fields(smpplib.command.BindTransmitter)
_BIND_RESP_FIELDS: Final = _mandatory_fields(smpplib.command.BindTransmitterResp)
_SM_FIELDS: Final = _mandatory_fields(smpplib.command.SubmitSM)
_DELIVER_FIELDS: Final = _mandatory_fields(smpplib.command.DeliverSM)
_SM_RESP_FIELDS: Final = _mandatory_fields(smpplib.command.SubmitSMResp)
_DELIVER_RESP_FIELDS: Final = _mandatory_fields(smpplib.command.DeliverSMResp)

_COMMAND_NAMES: Final = {
    CommandId.GENERIC_NACK: "generic_nack",
    CommandId.BIND_RECEIVER: "bind_receiver",
    CommandId.BIND_RECEIVER_RESP: "bind_receiver_resp",
    CommandId.BIND_TRANSMITTER: "bind_transmitter",
    CommandId.BIND_TRANSMITTER_RESP: "bind_transmitter_resp",
    CommandId.BIND_TRANSCEIVER: "bind_transceiver",
    CommandId.BIND_TRANSCEIVER_RESP: "bind_transceiver_resp",
    CommandId.SUBMIT_SM: "submit_sm",
    CommandId.SUBMIT_SM_RESP: "submit_sm_resp",
    CommandId.DELIVER_SM: "deliver_sm",
    CommandId.DELIVER_SM_RESP: "deliver_sm_resp",
    CommandId.UNBIND: "unbind",
    CommandId.UNBIND_RESP: "unbind_resp",
    CommandId.ENQUIRE_LINK: "enquire_link",
    CommandId.ENQUIRE_LINK_RESP: "enquire_link_resp",
}


# --- encoding -------------------------------------------------------------------


class _FixedSequence:
    """The ``client`` smpplib asks for sequence numbers: always the one we chose.

    One per encode call: no sequence state is ever shared (STYLE L5).
    """

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence

    def next_sequence(self) -> int:
        return self.sequence


def _check_cstr(name: str, value: str, max_with_nul: int) -> str:
    """Validate a C-string field; return it as smpplib wants it (latin-1 str)."""
    try:
        raw = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{name} must be ASCII") from exc
    if b"\0" in raw:
        raise LocalProtocolError(f"{name} must not contain NUL")
    if len(raw) > max_with_nul - 1:
        raise LocalProtocolError(f"{name} is longer than {max_with_nul - 1} octets")
    return raw.decode("latin-1")


def _check_int(name: str, value: int, size: int) -> int:
    if not 0 <= value < 1 << (8 * size):
        raise LocalProtocolError(f"{name}={value} does not fit in {size} octet(s)")
    return value


def _encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    parts = []
    for tlv in tlvs:
        if not 0 <= tlv.tag <= 0xFFFF:
            raise LocalProtocolError(f"TLV tag {tlv.tag:#x} does not fit in 2 octets")
        if len(tlv.value) > 0xFFFF:
            raise LocalProtocolError(f"TLV {tlv.tag:#06x} value longer than 65535 octets")
        parts.append(struct.pack(">HH", tlv.tag, len(tlv.value)))
        parts.append(bytes(tlv.value))
    return b"".join(parts)


def _smpplib_generate(
    command_id: CommandId,
    sequence: int,
    status: int,
    fields: tuple[_Field, ...],
    values: dict[str, Any],
    tlvs: tuple[Tlv, ...] = (),
    *,
    body: bool = True,
) -> bytes:
    if not 0 <= sequence <= 0xFFFFFFFF:
        raise LocalProtocolError(f"sequence {sequence} does not fit in 4 octets")
    if not 0 <= status <= 0xFFFFFFFF:
        raise LocalProtocolError(f"command_status {status} does not fit in 4 octets")
    name = _COMMAND_NAMES[command_id]
    checked: dict[str, Any] = {}
    for field in fields:
        if field.name not in values:
            continue  # derived by smpplib (sm_length)
        value = values[field.name]
        if field.kind == "cstr":
            checked[field.name] = _check_cstr(field.name, value, field.size)
        elif field.kind == "int":
            checked[field.name] = _check_int(field.name, value, field.size)
        else:
            if len(value) > field.size:
                raise LocalProtocolError(f"{field.name} is longer than {field.size} octets")
            checked[field.name] = bytes(value)
    tlv_bytes = _encode_tlvs(tlvs)
    try:
        pdu = smpplib.smpp.make_pdu(
            name,
            client=_FixedSequence(sequence),
            sequence=sequence,
            allow_unknown_opt_params=True,
        )
        pdu.sequence = sequence  # make_pdu ignores sequence=
        pdu.status = status
        for key, value in checked.items():
            setattr(pdu, key, value)
        raw: bytes = pdu.generate()
    except Exception as exc:  # the smpplib boundary: anything it raises is a misuse
        raise LocalProtocolError(f"smpplib could not encode {name}: {exc!r}") from exc
    if not body:
        # smpplib always writes every mandatory field; SMPP 3.4 wants none here.
        return HEADER.pack(HEADER_SIZE, command_id, status, sequence)
    if tlv_bytes:
        raw = struct.pack(">I", len(raw) + len(tlv_bytes)) + raw[4:] + tlv_bytes
    return raw


def encode_generic_nack(sequence: int, command_status: int) -> bytes:
    """The 16 bytes of a generic_nack (no body)."""
    try:
        return _HEADER_PACK(HEADER_SIZE, CommandId.GENERIC_NACK, command_status, sequence)
    except struct.error:
        return _smpplib_generate(CommandId.GENERIC_NACK, sequence, command_status, (), {})


def _sm_values(event: SubmitSm | DeliverSm) -> dict[str, Any]:
    return {
        "service_type": event.service_type,
        "source_addr_ton": event.source_addr_ton,
        "source_addr_npi": event.source_addr_npi,
        "source_addr": event.source_addr,
        "dest_addr_ton": event.dest_addr_ton,
        "dest_addr_npi": event.dest_addr_npi,
        "destination_addr": event.destination_addr,
        "esm_class": event.esm_class,
        "protocol_id": event.protocol_id,
        "priority_flag": event.priority_flag,
        "schedule_delivery_time": event.schedule_delivery_time,
        "validity_period": event.validity_period,
        "registered_delivery": event.registered_delivery,
        "replace_if_present_flag": event.replace_if_present_flag,
        "data_coding": event.data_coding,
        "sm_default_msg_id": event.sm_default_msg_id,
        "short_message": event.short_message,
    }


def reference_encode(event: Event) -> bytes:
    """Encode one event through smpplib (the reference the fast paths must match).

    Raises LocalProtocolError if it can't."""
    match event:
        case Bind():
            return _smpplib_generate(
                _BIND_IDS[event.mode],
                event.sequence,
                0,
                _BIND_FIELDS,
                {
                    "system_id": event.system_id,
                    "password": event.password,
                    "system_type": event.system_type,
                    "interface_version": event.interface_version,
                    "addr_ton": event.addr_ton,
                    "addr_npi": event.addr_npi,
                    "address_range": event.address_range,
                },
            )
        case BindResp():
            if event.command_status and not event.system_id and not event.tlvs:
                # SMPP 3.4 §4.1.2: no body when command_status is non-zero.
                return _smpplib_generate(
                    _BIND_RESP_IDS[event.mode],
                    event.sequence,
                    event.command_status,
                    (),
                    {},
                    body=False,
                )
            return _smpplib_generate(
                _BIND_RESP_IDS[event.mode],
                event.sequence,
                event.command_status,
                _BIND_RESP_FIELDS,
                {"system_id": event.system_id},
                event.tlvs,
            )
        case Unbind():
            return _smpplib_generate(CommandId.UNBIND, event.sequence, 0, (), {})
        case UnbindResp():
            return _smpplib_generate(
                CommandId.UNBIND_RESP, event.sequence, event.command_status, (), {}
            )
        case EnquireLink():
            return _smpplib_generate(CommandId.ENQUIRE_LINK, event.sequence, 0, (), {})
        case EnquireLinkResp():
            return _smpplib_generate(
                CommandId.ENQUIRE_LINK_RESP, event.sequence, event.command_status, (), {}
            )
        case SubmitSm():
            return _smpplib_generate(
                CommandId.SUBMIT_SM, event.sequence, 0, _SM_FIELDS, _sm_values(event), event.tlvs
            )
        case DeliverSm():
            return _smpplib_generate(
                CommandId.DELIVER_SM,
                event.sequence,
                0,
                _DELIVER_FIELDS,
                _sm_values(event),
                event.tlvs,
            )
        case SubmitSmResp():
            if event.command_status and not event.message_id:
                # SMPP 3.4 §4.4.2: no body when command_status is non-zero.
                return _smpplib_generate(
                    CommandId.SUBMIT_SM_RESP,
                    event.sequence,
                    event.command_status,
                    (),
                    {},
                    body=False,
                )
            return _smpplib_generate(
                CommandId.SUBMIT_SM_RESP,
                event.sequence,
                event.command_status,
                _SM_RESP_FIELDS,
                {"message_id": event.message_id},
            )
        case DeliverSmResp():
            # message_id is "unused, set to NULL" (§4.6.2): one NUL octet of body.
            return _smpplib_generate(
                CommandId.DELIVER_SM_RESP,
                event.sequence,
                event.command_status,
                _DELIVER_RESP_FIELDS,
                {"message_id": ""},
            )
        case GenericNack():
            return encode_generic_nack(event.sequence, event.command_status)
        case _:
            assert_never(event)


# --- encoding: the fast paths ------------------------------------------------------
#
# Each returns the PDU, or None when the event is outside the common case; it may
# also raise one of _UNFIT (a value of the wrong type or out of range met by
# ``bytes()``/``struct``). Either way ``encode`` hands the event to the reference
# path, which encodes it or raises the canonical LocalProtocolError.

_HEADER_PACK: Final = HEADER.pack
_TLV_HEAD_PACK: Final = struct.Struct(">HH").pack
_UNFIT: Final = (struct.error, ValueError, TypeError, AttributeError)
_NUL: Final = b"\0"


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
    return _HEADER_PACK(HEADER_SIZE + len(body), command_id, 0, event.sequence) + body


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
        return _HEADER_PACK(HEADER_SIZE, CommandId.SUBMIT_SM_RESP, status, event.sequence)
    message_id = event.message_id.encode("ascii")
    if len(message_id) > 64 or _NUL in message_id:
        return None
    return (
        _HEADER_PACK(
            HEADER_SIZE + len(message_id) + 1, CommandId.SUBMIT_SM_RESP, status, event.sequence
        )
        + message_id
        + _NUL
    )


def _fast_deliver_sm_resp(event: Event) -> bytes | None:
    assert isinstance(event, DeliverSmResp)
    # message_id is "unused, set to NULL" (§4.6.2): one NUL octet of body.
    return (
        _HEADER_PACK(
            HEADER_SIZE + 1, CommandId.DELIVER_SM_RESP, event.command_status, event.sequence
        )
        + _NUL
    )


def _fast_header_only(command_id: CommandId) -> Callable[[Event], bytes | None]:
    def fast(event: Event) -> bytes | None:
        status = getattr(event, "command_status", 0)
        return _HEADER_PACK(HEADER_SIZE, command_id, status, event.sequence)

    return fast


_FAST_ENCODERS: Final[dict[type[Event], Callable[[Event], bytes | None]]] = {
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


def encode(event: Event) -> bytes:
    """Encode one event as a complete PDU. Raises LocalProtocolError if it can't.

    The hot PDUs take a fast path (see the module docstring); everything else, and
    every event the fast path declines, goes through :func:`reference_encode`.
    """
    fast = _FAST_ENCODERS.get(type(event))
    if fast is not None:
        try:
            raw = fast(event)
        except _UNFIT:
            raw = None
        if raw is not None:
            return raw
    return reference_encode(event)


# --- decoding -------------------------------------------------------------------


class _BodyError(Exception):
    """Internal: the body does not match the layout; carries the status to answer."""

    def __init__(self, msg: str, status: CommandStatus = CommandStatus.ESME_RINVMSGLEN) -> None:
        super().__init__(msg)
        self.status = status


def _read_fields(
    fields: tuple[_Field, ...], body: bytes, *, response: bool
) -> tuple[dict[str, Any], int]:
    """Walk the mandatory fields; return their values and the offset after them.

    A response may stop at any field boundary (the missing fields are absent from
    the result) and its last C-string may run to the end of the body without a NUL.
    """
    values: dict[str, Any] = {}
    pos = 0
    end = len(body)
    for field in fields:
        if pos >= end and field.kind != "ostr":  # an ostr may be empty (sm_length 0)
            if response:
                break
            raise _BodyError(f"body ends before {field.name}")
        if field.kind == "int":
            stop = pos + field.size
            if stop > end:
                raise _BodyError(f"body ends inside {field.name}")
            values[field.name] = int.from_bytes(body[pos:stop], "big")
            pos = stop
        elif field.kind == "cstr":
            nul = body.find(b"\0", pos)
            if nul < 0:
                if not response:
                    raise _BodyError(f"{field.name} has no terminating NUL")
                nul = end
            values[field.name] = body[pos:nul].decode("ascii", "surrogateescape")
            pos = nul + 1
        else:
            length = values[field.len_field]
            stop = pos + length
            if stop > end:
                raise _BodyError(f"{field.name} claims {length} octets, body ends first")
            values[field.name] = body[pos:stop]
            pos = stop
    return values, min(pos, end)


def _read_tlvs(body: bytes, pos: int) -> tuple[Tlv, ...]:
    """Split optional parameters by tag and length; unknown tags are kept as is."""
    tlvs: list[Tlv] = []
    end = len(body)
    while pos < end:
        if end - pos < 4:
            raise _BodyError(
                f"{end - pos} stray octet(s) after the last optional parameter",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        tag, length = struct.unpack_from(">HH", body, pos)
        pos += 4
        if pos + length > end:
            raise _BodyError(
                f"optional parameter {tag:#06x} claims {length} octets, body ends first",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        tlvs.append(Tlv(tag=tag, value=body[pos : pos + length]))
        pos += length
    return tuple(tlvs)


def _decode_sm_reference(
    cls: type[SubmitSm] | type[DeliverSm], seq: int, body: bytes
) -> SubmitSm | DeliverSm:
    fields = _SM_FIELDS if cls is SubmitSm else _DELIVER_FIELDS
    values, pos = _read_fields(fields, body, response=False)
    del values["sm_length"]
    return cls(sequence=seq, tlvs=_read_tlvs(body, pos), **values)


def _decode_sm(cls: type[SubmitSm] | type[DeliverSm], seq: int, body: bytes) -> Event:
    """submit_sm/deliver_sm by a straight-line reader of the mandatory fields (the
    same walk as ``_read_fields`` over ``_SM_FIELDS``); a body that is not plainly
    well formed goes to the table-driven walker, which says what is wrong."""
    find = body.find
    a = find(0)  # end of service_type; source_addr_ton/npi follow
    b = find(0, a + 3) if a >= 0 else -1  # end of source_addr; dest ton/npi follow
    c = find(0, b + 3) if b >= 0 else -1  # end of destination_addr; esm, pid, prio
    d = find(0, c + 4) if c >= 0 else -1  # end of schedule_delivery_time
    e = find(0, d + 1) if d >= 0 else -1  # end of validity_period; 5 octets follow
    if e < 0 or e + 6 > len(body) or e + 6 + body[e + 5] > len(body):
        return _decode_sm_reference(cls, seq, body)
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
        tlvs=_read_tlvs(body, end) if end < len(body) else (),
    )


def _decode_body(
    command_id: int, status: int, seq: int, body: bytes, *, reference: bool = False
) -> Event:
    if command_id == CommandId.DELIVER_SM and not reference:
        return _decode_sm(DeliverSm, seq, body)
    if command_id == CommandId.SUBMIT_SM_RESP and not reference and body.find(0) == len(body) - 1:
        # The common cases: one C-string with its NUL and nothing after it, or no
        # body at all (an error status).
        return SubmitSmResp(
            sequence=seq,
            command_status=status,
            message_id=body[:-1].decode("ascii", "surrogateescape"),
        )
    if command_id in (
        CommandId.BIND_TRANSMITTER,
        CommandId.BIND_RECEIVER,
        CommandId.BIND_TRANSCEIVER,
    ):
        values, _ = _read_fields(_BIND_FIELDS, body, response=False)
        return Bind(sequence=seq, mode=_MODE_BY_ID[command_id], **values)
    if command_id in (
        CommandId.BIND_TRANSMITTER_RESP,
        CommandId.BIND_RECEIVER_RESP,
        CommandId.BIND_TRANSCEIVER_RESP,
    ):
        values, pos = _read_fields(_BIND_RESP_FIELDS, body, response=True)
        return BindResp(
            sequence=seq,
            command_status=status,
            mode=_MODE_BY_ID[command_id],
            system_id=values.get("system_id", ""),
            tlvs=_read_tlvs(body, pos),
        )
    if command_id == CommandId.SUBMIT_SM:
        if reference:
            return _decode_sm_reference(SubmitSm, seq, body)
        return _decode_sm(SubmitSm, seq, body)
    if command_id == CommandId.DELIVER_SM:
        return _decode_sm_reference(DeliverSm, seq, body)
    if command_id == CommandId.SUBMIT_SM_RESP:
        values, _ = _read_fields(_SM_RESP_FIELDS, body, response=True)
        return SubmitSmResp(
            sequence=seq, command_status=status, message_id=values.get("message_id", "")
        )
    if command_id == CommandId.DELIVER_SM_RESP:
        return DeliverSmResp(sequence=seq, command_status=status)
    if command_id == CommandId.UNBIND:
        return Unbind(sequence=seq)
    if command_id == CommandId.UNBIND_RESP:
        return UnbindResp(sequence=seq, command_status=status)
    if command_id == CommandId.ENQUIRE_LINK:
        return EnquireLink(sequence=seq)
    if command_id == CommandId.ENQUIRE_LINK_RESP:
        return EnquireLinkResp(sequence=seq, command_status=status)
    if command_id == CommandId.GENERIC_NACK:
        return GenericNack(sequence=seq, command_status=status)
    raise AssertionError("unreachable: command ids are checked by decode()")  # pragma: no cover


def command_name(command_id: int) -> str:
    """A readable name for error messages (``0x...`` for unknown ids)."""
    try:
        return _COMMAND_NAMES[CommandId(command_id)]
    except (ValueError, KeyError):
        return f"command_id {command_id:#010x}"


def decode(raw: bytes) -> Event:
    """Decode exactly one complete PDU (as cut by the framing layer).

    Raises PduRejected (with a generic_nack ready to send for a request, no reply
    for a response) when the PDU can't be turned into an event, FramingError when
    ``raw`` is not exactly one PDU long.
    """
    return _decode(raw, reference=False)


def reference_decode(raw: bytes) -> Event:
    """:func:`decode` without its fast paths (the reference they must match)."""
    return _decode(raw, reference=True)


def _decode(raw: bytes, *, reference: bool) -> Event:
    if len(raw) < HEADER_SIZE or int.from_bytes(raw[:4], "big") != len(raw):
        raise FramingError(
            f"decode() needs exactly one PDU; got {len(raw)} octets",
            command_status=CommandStatus.ESME_RINVCMDLEN,
        )
    length, command_id, status, seq = HEADER.unpack_from(raw)
    is_response = bool(command_id & RESPONSE_BIT)
    if command_id not in _COMMAND_NAMES:
        raise PduRejected(
            f"unsupported {command_name(command_id)} (sequence {seq})",
            sequence=seq,
            command_status=CommandStatus.ESME_RINVCMDID,
            reply=None if is_response else encode_generic_nack(seq, CommandStatus.ESME_RINVCMDID),
        )
    body = raw[HEADER_SIZE:length]
    try:
        return _decode_body(command_id, status, seq, body, reference=reference)
    except _BodyError as exc:
        if is_response and status != CommandStatus.ESME_ROK:
            # An error response: the status is the message, the body is noise.
            return _decode_body(command_id, status, seq, b"")
        raise PduRejected(
            f"malformed {command_name(command_id)} (sequence {seq}): {exc}",
            sequence=seq,
            command_status=exc.status,
            reply=None if is_response else encode_generic_nack(seq, exc.status),
        ) from exc
