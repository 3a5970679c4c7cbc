"""Delivery receipts: recognise them, parse them, and match their message ids.

Theory of operation
-------------------
A deliver_sm is a receipt when its message type bits (``esm_class & 0x3C``) say
so. The spec value is 0x04 (SMSC delivery receipt); like Kannel we also accept 0x08
(SME delivery acknowledgement) and 0x20 (intermediate delivery notification),
because some carriers flag their receipts that way.

:func:`parse_receipt` prefers the optional parameters ``receipted_message_id``
(0x001E) and ``message_state`` (0x0427), and falls back to the de-facto text
format of SMPP 3.4 Appendix B::

    id:X sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...

Keys are case-insensitive, dates may have 10 or 12 digits, every field but the id
and the state may be missing. Without an id or a state the receipt is useless:
:class:`ReceiptError` (a ValueError) -- the driver acknowledges the PDU and logs.

Carriers disagree on message id bases: the submit_sm_resp may say ``1d305b4c``
(hex) and the receipt ``0489708364`` (decimal) for the same message.
:func:`message_id_keys` gives the canonical keys of an id; two ids refer to the
same message when their key sets intersect.

Every value handed out here fits the store as it comes, whatever the SMSC sent:
a message id (from submit_sm_resp, the ``receipted_message_id`` TLV or the text
``id:``) goes through :func:`safe_message_id` -- printable ASCII, any other octet
written ``\\xNN``, cut to :data:`MAX_MESSAGE_ID_OCTETS` -- and ``stat``/``err``
are ASCII and at most :data:`MAX_STAT_OCTETS` long. :func:`message_id_keys`
never raises and never returns a key longer than :data:`MAX_ID_KEY_CHARS`: it
reads an id as a number only when it is short enough to be one.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from smscd.smpp._events import DeliverSm, Tlv

__all__ = [
    "MAX_ID_KEY_CHARS",
    "MAX_MESSAGE_ID_OCTETS",
    "MAX_STAT_OCTETS",
    "IdFormat",
    "Receipt",
    "ReceiptError",
    "is_receipt",
    "message_id_keys",
    "parse_receipt",
    "safe_message_id",
]

#: The longest message id kept: SMPP 3.4 gives message_id 65 octets with its NUL.
MAX_MESSAGE_ID_OCTETS: Final = 64
#: The longest key :func:`message_id_keys` returns (the store's key columns hold 80).
MAX_ID_KEY_CHARS: Final = 80
#: The longest receipt ``stat`` or ``err`` kept (the store's columns hold 16).
MAX_STAT_OCTETS: Final = 16
#: The most significant digits an id may have to be read as a number: a 64-bit
#: value is at most 16 hex digits or 20 decimal ones. Longer digit strings key
#: as themselves (and converting them would only cost time).
_MAX_HEX_DIGITS: Final = 16
_MAX_DEC_DIGITS: Final = 20

TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_MESSAGE_STATE: Final = 0x0427
TAG_NETWORK_ERROR_CODE: Final = 0x0423
TAG_MESSAGE_PAYLOAD: Final = 0x0424

_RECEIPT_TYPES: Final = frozenset({0x04, 0x08, 0x20})

#: message_state values (SMPP 3.4 §5.2.28) to the text stat names.
_STATE_NAMES: Final = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
#: Long spellings some SMSCs use in the text form.
_STAT_ALIASES: Final = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "ACCEPTED": "ACCEPTD",
    "REJECTED": "REJECTD",
}
_NOT_FINAL: Final = frozenset({"ENROUTE", "ACCEPTD"})

#: The keys of the text form; a value is never allowed to look like the next key
#: (``id: sub:001`` has no id, it does not have the id ``sub:001``).
_KEYS: Final = r"(?!(?:id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text):)"
# re.ASCII: ``\w``, ``\d`` and ``\s`` mean their ASCII sets, so a Latin-1 letter or
# digit never slips into err or a date.
_FLAGS: Final = re.IGNORECASE | re.ASCII
_ID_RE: Final = re.compile(r"(?:^|\s)id:[ \t]*" + _KEYS + r"(\S+)", _FLAGS)
_STAT_RE: Final = re.compile(r"(?:^|\s)stat:[ \t]*" + _KEYS + r"([A-Za-z_]+)", _FLAGS)
_ERR_RE: Final = re.compile(r"(?:^|\s)err:[ \t]*" + _KEYS + r"(\w+)", _FLAGS)
_SUBMIT_RE: Final = re.compile(r"submit[ _]date:[ \t]*(\d{12}|\d{10})(?!\d)", _FLAGS)
_DONE_RE: Final = re.compile(r"done[ _]date:[ \t]*(\d{12}|\d{10})(?!\d)", _FLAGS)


class ReceiptError(ValueError):
    """A receipt without a usable message id or state."""


@attrs.frozen(kw_only=True)
class Receipt:
    """What a delivery receipt says about one submitted message."""

    message_id: str
    #: The 7-letter state name: DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD,
    #: UNKNOWN, REJECTD or ENROUTE (or whatever else the SMSC wrote, upper-cased).
    stat: str
    #: The carrier's error code as written (text ``err:``), "" when absent.
    err: str
    #: False only for ENROUTE and ACCEPTD: a later receipt may follow.
    final: bool
    #: YYMMDDhhmm or YYMMDDhhmmss, "" when absent.
    submit_date: str
    done_date: str


def is_receipt(deliver: DeliverSm) -> bool:
    """True when the deliver_sm is a delivery receipt (see module docstring)."""
    return deliver.esm_class & 0x3C in _RECEIPT_TYPES


def _tlv(tlvs: tuple[Tlv, ...], tag: int) -> bytes | None:
    for tlv in tlvs:
        if tlv.tag == tag:
            return tlv.value
    return None


def _search(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    return match.group(1) if match else ""


def parse_receipt(deliver: DeliverSm) -> Receipt:
    """Parse a receipt: TLVs first, then the text. Raises ReceiptError."""
    body = deliver.short_message or _tlv(deliver.tlvs, TAG_MESSAGE_PAYLOAD) or b""
    text = bytes(body).decode("latin-1")

    message_id = ""
    raw_id = _tlv(deliver.tlvs, TAG_RECEIPTED_MESSAGE_ID)
    if raw_id is not None:
        message_id = safe_message_id(raw_id.split(b"\0", 1)[0])
    if not message_id:
        message_id = safe_message_id(_search(_ID_RE, text))
    if not message_id:
        raise ReceiptError("receipt carries no message id")

    stat = ""
    raw_state = _tlv(deliver.tlvs, TAG_MESSAGE_STATE)
    if raw_state:
        state = int.from_bytes(raw_state, "big")
        stat = _STATE_NAMES.get(state, "")
    if not stat:
        stat = _search(_STAT_RE, text).upper()
        stat = _STAT_ALIASES.get(stat, stat)[:MAX_STAT_OCTETS]
    if not stat:
        raise ReceiptError(f"receipt for message id {message_id!r} carries no state")

    err = _search(_ERR_RE, text)[:MAX_STAT_OCTETS]
    if not err:
        network_error = _tlv(deliver.tlvs, TAG_NETWORK_ERROR_CODE)
        if network_error is not None and len(network_error) == 3:
            err = f"{int.from_bytes(network_error[1:], 'big'):03d}"

    return Receipt(
        message_id=message_id,
        stat=stat,
        err=err,
        final=stat not in _NOT_FINAL,
        submit_date=_search(_SUBMIT_RE, text),
        done_date=_search(_DONE_RE, text),
    )


def _id_octets(raw: str) -> bytes:
    """The octets a message id string stands for: a character up to U+00FF is that
    octet (receipt texts are read as Latin-1), a lone surrogate U+DC80-U+DCFF the
    octet ``surrogateescape`` kept in it (the codec's C-strings), anything else
    its UTF-8 octets."""
    try:
        return raw.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return b"".join(
            ch.encode("latin-1", "surrogateescape")
            if ord(ch) <= 0xFF or 0xDC80 <= ord(ch) <= 0xDCFF
            else ch.encode("utf-8", "surrogatepass")
            for ch in raw
        )


#: What surrounds an id and is never part of it (ASCII whitespace).
_ID_SPACE: Final = " \t\n\r\x0b\x0c"


def safe_message_id(raw: str | bytes) -> str:
    """A message id as the store keeps it: printable ASCII, at most
    :data:`MAX_MESSAGE_ID_OCTETS` characters.

    Surrounding ASCII whitespace is dropped; printable ASCII octets (0x20-0x7E)
    stay as they are; any other octet is written ``\\xNN`` (lower-case hex); the
    result is cut at the last whole octet that fits. A ``str`` is first turned
    back into the octets it stands for (see ``_id_octets``). Idempotent: a safe id
    comes back unchanged.
    """
    if isinstance(raw, str):
        raw = raw.strip(_ID_SPACE)
        if len(raw) <= MAX_MESSAGE_ID_OCTETS and raw.isascii() and raw.isprintable():
            return raw  # the common case
        data = _id_octets(raw[:MAX_MESSAGE_ID_OCTETS])
    else:
        data = bytes(raw).strip(_ID_SPACE.encode())[:MAX_MESSAGE_ID_OCTETS]
    pieces: list[str] = []
    size = 0
    for octet in data:
        piece = chr(octet) if 0x20 <= octet <= 0x7E else f"\\x{octet:02x}"
        size += len(piece)
        if size > MAX_MESSAGE_ID_OCTETS:
            break
        pieces.append(piece)
    return "".join(pieces).rstrip(" ")


class IdFormat(enum.Enum):
    """How a carrier writes its message ids."""

    #: Unknown: an id matches under either reading.
    AUTO = "auto"
    #: Hexadecimal (``1d305b4c``).
    HEX = "hex"
    #: Decimal (``0489708364``).
    DEC = "dec"


_HEX_RE: Final = re.compile(r"[0-9a-f]+")
_DEC_RE: Final = re.compile(r"[0-9]+")


def message_id_keys(raw: str, fmt: IdFormat = IdFormat.AUTO) -> frozenset[str]:
    """Canonical lookup keys of a message id (decimal value of each reading).

    HEX -> {decimal of the hex value}; DEC -> {decimal value}; AUTO -> both readings
    that parse. Case, surrounding whitespace and leading zeros never matter. The
    id is made safe first (:func:`safe_message_id`), so an id and its safe form
    have the same keys. An id that is not a number in the chosen base(s), or has
    more significant digits than a 64-bit number (16 hex, 20 decimal), keys as
    its safe form, lower-cased. ``"1d305b4c"`` (hex) and
    ``"0489708364"`` (dec) share ``"489708364"``. Never raises; every key is
    printable ASCII of at most :data:`MAX_ID_KEY_CHARS` characters.
    """
    cleaned = safe_message_id(raw).lower()
    significant = len(cleaned.lstrip("0"))
    keys: set[str] = set()
    if (
        fmt in (IdFormat.HEX, IdFormat.AUTO)
        and significant <= _MAX_HEX_DIGITS
        and _HEX_RE.fullmatch(cleaned)
    ):
        keys.add(str(int(cleaned, 16)))
    if (
        fmt in (IdFormat.DEC, IdFormat.AUTO)
        and significant <= _MAX_DEC_DIGITS
        and _DEC_RE.fullmatch(cleaned)
    ):
        keys.add(str(int(cleaned, 10)))
    if not keys:
        keys.add(cleaned)
    return frozenset(keys)
