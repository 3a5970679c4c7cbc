"""The PDU codec: our attrs events to SMPP 3.4 bytes and back.

Theory of operation
-------------------
This is the only module that imports smpplib (STYLE L4), and it uses only
``smpplib.smpp``, ``smpplib.command`` and ``smpplib.consts``. The codec is three
modules:

* ``_layout.py``: command ids and names, the shape of a field table, values
  checked against a table and bodies read by one (the strict walker).
* ``_fastpath.py``: struct encoders and straight-line decoders for the PDUs of
  the traffic; each gives up (returns None) on anything but the common case.
* this module: the field tables taken from smpplib's command classes, the
  reference encoder over smpplib, the reference decoder over the walker, the
  public :func:`encode`/:func:`decode` that try the fast path first and fall
  back to the reference, and the wrapping of every failure into the core's own
  errors. Every error, and every odd-but-legal value, comes from the reference.

**Encoding** through the reference checks every field first (``check_fields``:
smpplib would silently truncate an over-long C-string), then builds the smpplib
command object with ``smpplib.smpp.make_pdu(name,
client=..., sequence=..., allow_unknown_opt_params=True)`` and lets it generate
the header and the mandatory body. Two smpplib traps are handled here:
``sequence=`` is ignored by ``make_pdu`` (we set ``pdu.sequence`` afterwards),
and every command asks its ``client`` for a sequence (we pass a throw-away
:class:`_FixedSequence`, never a shared counter). Optional parameters are
appended by us from ``event.tlvs`` and the header's command_length is patched
to match. Anything smpplib raises is a :class:`LocalProtocolError`, the caller's
bug.

**Decoding** reads the mandatory fields with ``_layout``'s walker, driven by
smpplib's field tables, never with smpplib's ``parse_params``. Every failure
becomes :class:`PduRejected` carrying the sequence read from the raw header and
a ready-to-send reply (``generic_nack``), or no reply for a response. A response
with a non-zero status whose body is garbage is accepted with empty fields --
the status is what matters. Trailing bytes after the body of PDUs that have no
optional parameters in SMPP 3.4 are ignored.
"""

from __future__ import annotations

import struct
from typing import Any, Final, assert_never

import smpplib.command
import smpplib.consts
import smpplib.smpp

from smscd.smpp._errors import FramingError, LocalProtocolError, PduRejected
from smscd.smpp._events import (
    Bind,
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
from smscd.smpp._fastpath import HEADER_PACK, UNFIT, decode_sm, decode_submit_sm_resp, fast_encoder
from smscd.smpp._framing import HEADER, HEADER_SIZE
from smscd.smpp._layout import (
    BIND_IDS,
    BIND_RESP_IDS,
    COMMAND_NAMES,
    MODE_BY_ID,
    RESPONSE_BIT,
    BodyError,
    CommandId,
    Field,
    check_fields,
    command_name,
    encode_tlvs,
    read_fields,
    read_tlvs,
)
from smscd.smpp._status import CommandStatus

__all__ = [
    "RESPONSE_BIT",
    "CommandId",
    "decode",
    "encode",
    "encode_generic_nack",
    "reference_decode",
    "reference_encode",
]


# --- field tables, taken from smpplib's command classes -----------------------


def _mandatory_fields(cls: Any) -> tuple[Field, ...]:
    fields: list[Field] = []
    for name in cls.params_order:
        if name in smpplib.consts.OPTIONAL_PARAMS:
            continue  # optional parameters are ours to parse
        param = cls.params[name]
        if param.type is int:
            fields.append(Field(name, "int", param.size))
        elif param.type is str:
            fields.append(Field(name, "cstr", param.max))
        else:
            fields.append(Field(name, "ostr", param.max, param.len_field))
    return tuple(fields)


_BIND_FIELDS: Final = _mandatory_fields(smpplib.command.BindTransmitter)
_BIND_RESP_FIELDS: Final = _mandatory_fields(smpplib.command.BindTransmitterResp)
_SM_FIELDS: Final = _mandatory_fields(smpplib.command.SubmitSM)
_DELIVER_FIELDS: Final = _mandatory_fields(smpplib.command.DeliverSM)
_SM_RESP_FIELDS: Final = _mandatory_fields(smpplib.command.SubmitSMResp)
_DELIVER_RESP_FIELDS: Final = _mandatory_fields(smpplib.command.DeliverSMResp)


# --- encoding: the reference, over smpplib ------------------------------------


class _FixedSequence:
    """The ``client`` smpplib asks for sequence numbers: always the one we chose.

    One per encode call: no sequence state is ever shared (STYLE L5).
    """

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence

    def next_sequence(self) -> int:
        return self.sequence


def _smpplib_generate(
    command_id: CommandId,
    sequence: int,
    status: int,
    fields: tuple[Field, ...],
    values: dict[str, Any],
    tlvs: tuple[Tlv, ...] = (),
    *,
    body: bool = True,
) -> bytes:
    if not 0 <= sequence <= 0xFFFFFFFF:
        raise LocalProtocolError(f"sequence {sequence} does not fit in 4 octets")
    if not 0 <= status <= 0xFFFFFFFF:
        raise LocalProtocolError(f"command_status {status} does not fit in 4 octets")
    name = COMMAND_NAMES[command_id]
    checked = check_fields(fields, values)
    tlv_bytes = encode_tlvs(tlvs)
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
        return HEADER_PACK(HEADER_SIZE, CommandId.GENERIC_NACK, command_status, sequence)
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
                BIND_IDS[event.mode],
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
                    BIND_RESP_IDS[event.mode],
                    event.sequence,
                    event.command_status,
                    (),
                    {},
                    body=False,
                )
            return _smpplib_generate(
                BIND_RESP_IDS[event.mode],
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


def encode(event: Event) -> bytes:
    """Encode one event as a complete PDU. Raises LocalProtocolError if it can't.

    The hot PDUs take a fast path (see ``_fastpath``); everything else, and every
    event the fast path declines, goes through :func:`reference_encode`.
    """
    fast = fast_encoder(type(event))
    if fast is not None:
        try:
            raw = fast(event)
        except UNFIT:
            raw = None
        if raw is not None:
            return raw
    return reference_encode(event)


# --- decoding -----------------------------------------------------------------


def _decode_sm_reference(
    cls: type[SubmitSm] | type[DeliverSm], seq: int, body: bytes
) -> SubmitSm | DeliverSm:
    fields = _SM_FIELDS if cls is SubmitSm else _DELIVER_FIELDS
    values, pos = read_fields(fields, body, response=False)
    del values["sm_length"]
    return cls(sequence=seq, tlvs=read_tlvs(body, pos), **values)


def _decode_body(
    command_id: int, status: int, seq: int, body: bytes, *, reference: bool = False
) -> Event:
    # The fast paths first (None: not plainly well formed), in traffic order.
    if command_id == CommandId.DELIVER_SM and not reference:
        sm = decode_sm(DeliverSm, seq, body)
        return sm if sm is not None else _decode_sm_reference(DeliverSm, seq, body)
    if command_id == CommandId.SUBMIT_SM_RESP and not reference:
        resp = decode_submit_sm_resp(status, seq, body)
        if resp is not None:
            return resp
    if command_id in (
        CommandId.BIND_TRANSMITTER,
        CommandId.BIND_RECEIVER,
        CommandId.BIND_TRANSCEIVER,
    ):
        values, _ = read_fields(_BIND_FIELDS, body, response=False)
        return Bind(sequence=seq, mode=MODE_BY_ID[command_id], **values)
    if command_id in (
        CommandId.BIND_TRANSMITTER_RESP,
        CommandId.BIND_RECEIVER_RESP,
        CommandId.BIND_TRANSCEIVER_RESP,
    ):
        values, pos = read_fields(_BIND_RESP_FIELDS, body, response=True)
        return BindResp(
            sequence=seq,
            command_status=status,
            mode=MODE_BY_ID[command_id],
            system_id=values.get("system_id", ""),
            tlvs=read_tlvs(body, pos),
        )
    if command_id == CommandId.SUBMIT_SM:
        sm = None if reference else decode_sm(SubmitSm, seq, body)
        return sm if sm is not None else _decode_sm_reference(SubmitSm, seq, body)
    if command_id == CommandId.DELIVER_SM:
        return _decode_sm_reference(DeliverSm, seq, body)
    if command_id == CommandId.SUBMIT_SM_RESP:
        values, _ = read_fields(_SM_RESP_FIELDS, body, response=True)
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
    if command_id not in COMMAND_NAMES:
        raise PduRejected(
            f"unsupported {command_name(command_id)} (sequence {seq})",
            sequence=seq,
            command_status=CommandStatus.ESME_RINVCMDID,
            reply=None if is_response else encode_generic_nack(seq, CommandStatus.ESME_RINVCMDID),
        )
    body = raw[HEADER_SIZE:length]
    try:
        return _decode_body(command_id, status, seq, body, reference=reference)
    except BodyError as exc:
        if is_response and status != CommandStatus.ESME_ROK:
            # An error response: the status is the message, the body is noise.
            return _decode_body(command_id, status, seq, b"")
        raise PduRejected(
            f"malformed {command_name(command_id)} (sequence {seq}): {exc}",
            sequence=seq,
            command_status=exc.status,
            reply=None if is_response else encode_generic_nack(seq, exc.status),
        ) from exc
