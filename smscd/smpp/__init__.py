"""smscd.smpp: a sans-I/O SMPP 3.4 core (no sockets, no clock, no logging).

Feed bytes to a :class:`Connection`, get typed events back; give it events, get
bytes to write. The trio driver in ``smscd.link`` and the simulator in
``smscd.simulator`` do the I/O. Only this package's public names below are API.
"""

from __future__ import annotations

from smscd.smpp._codec import decode, encode
from smscd.smpp._connection import Connection, response_for
from smscd.smpp._edge import MAX_ADDRESS_OCTETS, MAX_MESSAGE_OCTETS
from smscd.smpp._errors import (
    FramingError,
    LocalProtocolError,
    PduRejected,
    RemoteProtocolError,
    SmppError,
)
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
    NeedData,
    Request,
    Response,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
)
from smscd.smpp._framing import MAX_SEQUENCE, MAX_SKIPPED_PDU_SIZE
from smscd.smpp._layout import CommandId
from smscd.smpp._receipts import (
    MAX_ID_KEY_CHARS,
    MAX_MESSAGE_ID_OCTETS,
    MAX_STAT_OCTETS,
    IdFormat,
    Receipt,
    ReceiptError,
    is_receipt,
    message_id_keys,
    parse_receipt,
    safe_message_id,
)
from smscd.smpp._state import Role, SessionState
from smscd.smpp._status import CommandStatus, is_temporary, is_throttling
from smscd.smpp._text import (
    AssembledMessage,
    Concat,
    MessageAssembler,
    PartialMessage,
    decode_short_message,
    encode_gsm7,
    is_gsm7,
    split_udh,
)

__all__ = [
    "MAX_ADDRESS_OCTETS",
    "MAX_ID_KEY_CHARS",
    "MAX_MESSAGE_ID_OCTETS",
    "MAX_MESSAGE_OCTETS",
    "MAX_SEQUENCE",
    "MAX_SKIPPED_PDU_SIZE",
    "MAX_STAT_OCTETS",
    "AssembledMessage",
    "Bind",
    "BindMode",
    "BindResp",
    "CommandId",
    "CommandStatus",
    "Concat",
    "Connection",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "Event",
    "FramingError",
    "GenericNack",
    "IdFormat",
    "LocalProtocolError",
    "MessageAssembler",
    "NeedData",
    "PartialMessage",
    "PduRejected",
    "Receipt",
    "ReceiptError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Role",
    "SessionState",
    "SmppError",
    "SubmitSm",
    "SubmitSmResp",
    "Tlv",
    "Unbind",
    "UnbindResp",
    "decode",
    "decode_short_message",
    "encode",
    "encode_gsm7",
    "is_gsm7",
    "is_receipt",
    "is_temporary",
    "is_throttling",
    "message_id_keys",
    "parse_receipt",
    "response_for",
    "safe_message_id",
    "split_udh",
]
