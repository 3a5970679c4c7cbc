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
from typing import Any, Final, assert_never

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

__all__ = ["CommandId", "decode", "encode", "encode_generic_nack"]


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


def encode(event: Event) -> bytes:
    """Encode one event as a complete PDU. Raises LocalProtocolError if it can't."""
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


def _decode_sm(cls: type[SubmitSm] | type[DeliverSm], seq: int, body: bytes) -> Event:
    fields = _SM_FIELDS if cls is SubmitSm else _DELIVER_FIELDS
    values, pos = _read_fields(fields, body, response=False)
    del values["sm_length"]
    return cls(sequence=seq, tlvs=_read_tlvs(body, pos), **values)


def _decode_body(command_id: int, status: int, seq: int, body: bytes) -> Event:
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
        return _decode_sm(SubmitSm, seq, body)
    if command_id == CommandId.DELIVER_SM:
        return _decode_sm(DeliverSm, seq, body)
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
        return _decode_body(command_id, status, seq, body)
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
