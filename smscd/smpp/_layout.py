"""The PDU layout: command ids, field tables, and bodies checked and read by them.

Theory of operation
-------------------
A PDU body is its mandatory fields, in the order SMPP 3.4 gives them, then its
optional parameters (TLVs). A mandatory field is one of three kinds: an
integer of a fixed width, a C-string with a maximum length counting its NUL,
or an octet string whose length is a previous integer field (``sm_length``
before ``short_message``). A :class:`Field` is one row of such a table; the
tables themselves are derived from smpplib's command classes (``params_order``
and ``Param`` type/size) in ``_codec.py``, the only module that imports smpplib.

Encoding: :func:`check_fields` validates every value against its field before
the reference encoder hands it to smpplib, which would silently truncate an
over-long C-string or die with a bare ``struct.error`` on an over-long
short_message; :func:`encode_tlvs` writes the optional parameters exactly as
given, so unknown and vendor tags survive a round trip.

Decoding: :func:`read_fields` walks a body by its table and :func:`read_tlvs`
splits what follows by tag and length, keeping unknown tags as they are.
smpplib's ``parse_params`` is not used on untrusted bytes because it mis-parses
instead of failing: a C-string without its NUL makes ``find()`` return -1 and
rewinds to offset 0, integer TLVs ignore their stated length (a 1-byte
``user_message_reference`` misaligns everything after it), a TLV it knows but
not for that PDU is a ``KeyError`` and truncation is a bare ``struct.error``.
Here each of those is a :class:`BodyError` carrying the command_status to answer.

Leniency, chosen from what carriers really send: a *response* may stop at any
field boundary (``submit_sm_resp`` with no body on error, ``deliver_sm_resp``
without its NUL) and its last C-string may lack a NUL. Requests must carry
every mandatory field. C-strings are ASCII; octets >= 0x80 travel as lone
surrogates (``surrogateescape``) so that decode and encode are exact inverses.
"""

from __future__ import annotations

import enum
import struct
from typing import Any, Final

import attrs

from smscd.smpp._errors import LocalProtocolError
from smscd.smpp._events import BindMode, Tlv
from smscd.smpp._status import CommandStatus

__all__ = [
    "BIND_IDS",
    "BIND_RESP_IDS",
    "COMMAND_NAMES",
    "MODE_BY_ID",
    "RESPONSE_BIT",
    "BodyError",
    "CommandId",
    "Field",
    "check_fields",
    "command_name",
    "encode_tlvs",
    "read_fields",
    "read_tlvs",
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

BIND_IDS: Final = {
    BindMode.TRANSMITTER: CommandId.BIND_TRANSMITTER,
    BindMode.RECEIVER: CommandId.BIND_RECEIVER,
    BindMode.TRANSCEIVER: CommandId.BIND_TRANSCEIVER,
}
BIND_RESP_IDS: Final = {
    BindMode.TRANSMITTER: CommandId.BIND_TRANSMITTER_RESP,
    BindMode.RECEIVER: CommandId.BIND_RECEIVER_RESP,
    BindMode.TRANSCEIVER: CommandId.BIND_TRANSCEIVER_RESP,
}
MODE_BY_ID: Final[dict[int, BindMode]] = {
    **{cid: mode for mode, cid in BIND_IDS.items()},
    **{cid: mode for mode, cid in BIND_RESP_IDS.items()},
}

#: The commands the codec handles, by the names smpplib knows them by. Any
#: other command_id is refused with ESME_RINVCMDID.
COMMAND_NAMES: Final = {
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


def command_name(command_id: int) -> str:
    """A readable name for error messages (``0x...`` for unknown ids)."""
    try:
        return COMMAND_NAMES[CommandId(command_id)]
    except (ValueError, KeyError):
        return f"command_id {command_id:#010x}"


@attrs.frozen
class Field:
    """One mandatory field of a PDU body, in a table of them."""

    name: str
    kind: str  # "int" | "cstr" | "ostr"
    #: int: width in bytes; cstr: max length including the NUL; ostr: max length.
    size: int
    #: ostr only: the int field before it that holds its length.
    len_field: str = ""


# --- reading a body by a table (decoding) -------------------------------------


class BodyError(Exception):
    """The body does not match the layout; carries the status to answer."""

    def __init__(self, msg: str, status: CommandStatus = CommandStatus.ESME_RINVMSGLEN) -> None:
        super().__init__(msg)
        self.status = status


def read_fields(
    fields: tuple[Field, ...], body: bytes, *, response: bool
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
            raise BodyError(f"body ends before {field.name}")
        if field.kind == "int":
            stop = pos + field.size
            if stop > end:
                raise BodyError(f"body ends inside {field.name}")
            values[field.name] = int.from_bytes(body[pos:stop], "big")
            pos = stop
        elif field.kind == "cstr":
            nul = body.find(b"\0", pos)
            if nul < 0:
                if not response:
                    raise BodyError(f"{field.name} has no terminating NUL")
                nul = end
            values[field.name] = body[pos:nul].decode("ascii", "surrogateescape")
            pos = nul + 1
        else:
            length = values[field.len_field]
            stop = pos + length
            if stop > end:
                raise BodyError(f"{field.name} claims {length} octets, body ends first")
            values[field.name] = body[pos:stop]
            pos = stop
    return values, min(pos, end)


def read_tlvs(body: bytes, pos: int) -> tuple[Tlv, ...]:
    """Split optional parameters by tag and length; unknown tags are kept as is."""
    tlvs: list[Tlv] = []
    end = len(body)
    while pos < end:
        if end - pos < 4:
            raise BodyError(
                f"{end - pos} stray octet(s) after the last optional parameter",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        tag, length = struct.unpack_from(">HH", body, pos)
        pos += 4
        if pos + length > end:
            raise BodyError(
                f"optional parameter {tag:#06x} claims {length} octets, body ends first",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        tlvs.append(Tlv(tag=tag, value=body[pos : pos + length]))
        pos += length
    return tuple(tlvs)


# --- checking values against a table (encoding) -------------------------------


def _check_cstr(name: str, value: str, max_with_nul: int) -> str:
    """Validate a C-string field; return it as one character per octet (latin-1)."""
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


def check_fields(fields: tuple[Field, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Check each value against its field, in table order; return them checked.

    C-strings come back as latin-1 ``str`` (one character per octet), octet
    strings as ``bytes``. A field absent from ``values`` is skipped (``sm_length``
    is derived from ``short_message``). Raises LocalProtocolError naming the first
    field that does not fit.
    """
    checked: dict[str, Any] = {}
    for field in fields:
        if field.name not in values:
            continue
        value = values[field.name]
        if field.kind == "cstr":
            checked[field.name] = _check_cstr(field.name, value, field.size)
        elif field.kind == "int":
            checked[field.name] = _check_int(field.name, value, field.size)
        else:
            if len(value) > field.size:
                raise LocalProtocolError(f"{field.name} is longer than {field.size} octets")
            checked[field.name] = bytes(value)
    return checked


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    """Optional parameters as tag, length and value, in the order given.

    Raises LocalProtocolError for a tag or a value that does not fit its field.
    """
    parts = []
    for tlv in tlvs:
        if not 0 <= tlv.tag <= 0xFFFF:
            raise LocalProtocolError(f"TLV tag {tlv.tag:#x} does not fit in 2 octets")
        if len(tlv.value) > 0xFFFF:
            raise LocalProtocolError(f"TLV {tlv.tag:#06x} value longer than 65535 octets")
        parts.append(struct.pack(">HH", tlv.tag, len(tlv.value)))
        parts.append(bytes(tlv.value))
    return b"".join(parts)
