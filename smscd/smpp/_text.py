"""Message text: data_coding, GSM 03.38, user data headers and reassembly.

Theory of operation
-------------------
A ``short_message`` is bytes whose meaning depends on ``data_coding``;
:func:`decode_short_message` turns them into ``str`` and never raises (an MO must
never be lost to a bad byte: undecodable bytes become U+FFFD). What it returns can
always be stored: valid Unicode without lone surrogates (a UCS-2 half pair is a
decoding error, hence U+FFFD) and without NUL, which PostgreSQL text refuses (a
NUL character becomes U+FFFD too).

data_coding 0 is the SMSC default alphabet. In SMPP that is nearly always GSM 03.38
*unpacked* (one septet per octet, ``0x1B`` escaping into the extension table), but
some SMSCs use ASCII/Latin-1 instead: ``gsm7_default`` chooses, per carrier. The
GSM 03.38 tables, the encoder and the decoder (an unknown escape shows the base
character, a lone trailing escape a space) are the leaf module ``smscd.gsm7``,
which the reset pipeline's template checks use too. The 0xF0-0xFF "message
class" group is honoured (bit 2: 8-bit data, else GSM 7-bit); any other unknown
value is decoded as Latin-1.

Long messages arrive in parts, tied together either by a user data header
(esm_class UDHI bit 0x40; information element 0x00 with an 8-bit reference or 0x08
with a 16-bit one) or by the ``sar_*`` optional parameters. :class:`MessageAssembler`
collects parts keyed by ``(source_addr, destination_addr, reference, total)``, in
any order, and hands out the whole message once all are in, with the sequence
numbers of every deliver_sm that carried it so the driver can acknowledge them all.
Payload bytes are joined *before* decoding, so a UCS-2 surrogate pair split across
two parts still decodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from smscd.gsm7 import Gsm7Error, decode_gsm7, is_gsm7
from smscd.gsm7 import encode_gsm7 as _encode_gsm7
from smscd.smpp._errors import LocalProtocolError

if TYPE_CHECKING:
    from smscd.smpp._events import DeliverSm, Tlv

__all__ = [
    "AssembledMessage",
    "Concat",
    "MessageAssembler",
    "PartialMessage",
    "decode_short_message",
    "encode_gsm7",
    "is_gsm7",
    "split_udh",
]

#: Optional parameter tags used here.
TAG_SAR_MSG_REF_NUM: Final = 0x020C
TAG_SAR_TOTAL_SEGMENTS: Final = 0x020E
TAG_SAR_SEGMENT_SEQNUM: Final = 0x020F
TAG_MESSAGE_PAYLOAD: Final = 0x0424

_UDHI: Final = 0x40


def decode_short_message(data_coding: int, payload: bytes, *, gsm7_default: bool = True) -> str:
    """Decode message bytes by data_coding; never raises (see module docstring)."""
    payload = bytes(payload)
    # 0xF0-0xFF: the message class group, GSM 7-bit unless bit 2 says 8-bit data.
    in_class_group = 0xF0 <= data_coding <= 0xFF and not data_coding & 0x04
    if gsm7_default if data_coding == 0x00 else in_class_group:
        return decode_gsm7(payload)  # GSM 03.38 has no NUL: 0x00 is "@"
    if data_coding in (0x00, 0x01):
        text = payload.decode("ascii", "replace")
    elif data_coding == 0x08:
        text = payload.decode("utf-16-be", "replace")
    else:
        # 0x03 Latin-1, and the best effort for everything else (0x02/0x04 binary...).
        text = payload.decode("latin-1")
    return text.replace("\0", "\ufffd")


def encode_gsm7(text: str) -> bytes:
    """GSM 03.38 unpacked septets (data_coding 0); extension characters take two
    (``smscd.gsm7``, the one GSM-7 table).

    Raises LocalProtocolError naming the first character outside GSM 03.38.
    """
    try:
        return _encode_gsm7(text)
    except Gsm7Error as exc:
        raise LocalProtocolError(str(exc)) from None


# --- concatenation ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Concat:
    """Where one part fits in a concatenated message."""

    #: The reference shared by every part (8 or 16 bits).
    ref: int
    #: How many parts the whole message has (>= 1).
    total: int
    #: This part's number, 1..total.
    seqnum: int


def _valid(ref: int, total: int, seqnum: int) -> Concat | None:
    if total < 1 or not 1 <= seqnum <= total:
        return None
    return Concat(ref=ref, total=total, seqnum=seqnum)


def split_udh(esm_class: int, short_message: bytes) -> tuple[Concat | None, bytes]:
    """Strip the user data header (when esm_class has UDHI) and read concatenation.

    Returns ``(concat, payload)``. Other information elements are skipped. A UDH
    that does not fit the message is treated as no UDH at all: ``(None,
    short_message)``. A concatenation element with impossible numbers is ignored.
    """
    if not esm_class & _UDHI or not short_message:
        return None, short_message
    udhl = short_message[0]
    end = 1 + udhl
    if end > len(short_message):
        return None, short_message
    concat: Concat | None = None
    pos = 1
    while pos < end:
        if pos + 2 > end:
            return None, short_message
        iei, iel = short_message[pos], short_message[pos + 1]
        data = short_message[pos + 2 : pos + 2 + iel]
        pos += 2 + iel
        if pos > end:
            return None, short_message
        if iei == 0x00 and iel == 3:
            concat = _valid(data[0], data[1], data[2])
        elif iei == 0x08 and iel == 4:
            concat = _valid(int.from_bytes(data[0:2], "big"), data[2], data[3])
    return concat, short_message[end:]


def _tlv_int(tlvs: tuple[Tlv, ...], tag: int) -> int | None:
    for tlv in tlvs:
        if tlv.tag == tag and tlv.value:
            return int.from_bytes(tlv.value, "big")
    return None


def _tlv_bytes(tlvs: tuple[Tlv, ...], tag: int) -> bytes | None:
    for tlv in tlvs:
        if tlv.tag == tag:
            return tlv.value
    return None


def sar_concat(tlvs: tuple[Tlv, ...]) -> Concat | None:
    """Concatenation from sar_msg_ref_num/sar_total_segments/sar_segment_seqnum."""
    ref = _tlv_int(tlvs, TAG_SAR_MSG_REF_NUM)
    total = _tlv_int(tlvs, TAG_SAR_TOTAL_SEGMENTS)
    seqnum = _tlv_int(tlvs, TAG_SAR_SEGMENT_SEQNUM)
    if ref is None or total is None or seqnum is None:
        return None
    return _valid(ref, total, seqnum)


# --- reassembly --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AssembledMessage:
    """A whole mobile-originated message, however many deliver_sm carried it."""

    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    text: str
    data_coding: int
    #: The deliver_sm sequence of every part (duplicates included): ack them all.
    sequences: tuple[int, ...]


@attrs.frozen(kw_only=True)
class PartialMessage:
    """An incomplete message dropped by :meth:`MessageAssembler.expire`."""

    source_addr: str
    destination_addr: str
    ref: int
    total: int
    #: The part numbers that did arrive, sorted.
    received: tuple[int, ...]
    #: Best-effort text of the parts that arrived, in order.
    text: str
    sequences: tuple[int, ...]


@attrs.define
class _Parts:
    first: DeliverSm
    first_seen: float
    payloads: dict[int, bytes] = attrs.field(factory=dict)
    sequences: list[int] = attrs.field(factory=list)


_Key = tuple[str, str, int, int]


@attrs.define
class MessageAssembler:
    """Reassembles concatenated deliver_sm parts (UDH or sar_* TLVs), any order."""

    _pending: dict[_Key, _Parts] = attrs.field(factory=dict, init=False)

    def __len__(self) -> int:
        """How many partial messages are waiting for parts."""
        return len(self._pending)

    def feed(
        self, deliver: DeliverSm, *, now: float, gsm7_default: bool = True
    ) -> AssembledMessage | None:
        """Add one deliver_sm; return the whole message once complete, else None."""
        body = deliver.short_message
        if not body:
            body = _tlv_bytes(deliver.tlvs, TAG_MESSAGE_PAYLOAD) or b""
        concat, payload = split_udh(deliver.esm_class, body)
        if concat is None and not deliver.esm_class & _UDHI:
            concat = sar_concat(deliver.tlvs)
        if concat is None or concat.total == 1:
            return self._message(deliver, payload, (deliver.sequence,), gsm7_default)
        key = (deliver.source_addr, deliver.destination_addr, concat.ref, concat.total)
        parts = self._pending.get(key)
        if parts is None:
            parts = self._pending[key] = _Parts(first=deliver, first_seen=now)
        parts.payloads.setdefault(concat.seqnum, payload)  # a resent part: keep the first
        parts.sequences.append(deliver.sequence)
        if len(parts.payloads) < concat.total:
            return None
        del self._pending[key]
        whole = b"".join(parts.payloads[n] for n in range(1, concat.total + 1))
        return self._message(parts.first, whole, tuple(parts.sequences), gsm7_default)

    @staticmethod
    def _message(
        deliver: DeliverSm, payload: bytes, sequences: tuple[int, ...], gsm7_default: bool
    ) -> AssembledMessage:
        return AssembledMessage(
            source_addr=deliver.source_addr,
            source_addr_ton=deliver.source_addr_ton,
            source_addr_npi=deliver.source_addr_npi,
            destination_addr=deliver.destination_addr,
            text=decode_short_message(deliver.data_coding, payload, gsm7_default=gsm7_default),
            data_coding=deliver.data_coding,
            sequences=sequences,
        )

    def expire(
        self, now: float, max_age: float = 60.0, *, gsm7_default: bool = True
    ) -> list[PartialMessage]:
        """Drop and return partial messages whose first part is older than max_age."""
        dropped: list[PartialMessage] = []
        for key, parts in list(self._pending.items()):
            if now - parts.first_seen < max_age:
                continue
            del self._pending[key]
            received = tuple(sorted(parts.payloads))
            text = decode_short_message(
                parts.first.data_coding,
                b"".join(parts.payloads[n] for n in received),
                gsm7_default=gsm7_default,
            )
            dropped.append(
                PartialMessage(
                    source_addr=key[0],
                    destination_addr=key[1],
                    ref=key[2],
                    total=key[3],
                    received=received,
                    text=text,
                    sequences=tuple(parts.sequences),
                )
            )
        return dropped
