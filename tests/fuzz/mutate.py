"""Hostile SMPP PDUs: valid fixtures, named hostile cases and a seeded mutator.

Shared by every fuzz mode (the in-process core fuzzer, a fuzzer of a running
daemon) and by the property tests' strategies:

* :data:`FIXTURES` -- one valid PDU of every kind an SMSC sends to an ESME:
  deliver_sm (MO with text, with message_payload, in UCS-2, one part of a
  concatenated message; receipts in text form and with TLV ids), submit_sm_resp,
  enquire_link, enquire_link_resp, unbind, unbind_resp, generic_nack and
  bind_transceiver_resp. Responses carry the sequences the core fuzzer's ESME
  has outstanding (:data:`SUBMIT_SEQUENCES`, ...).
* :data:`HOSTILE_PDUS` -- one named PDU for each input that once crashed the
  daemon downstream of the SMPP core (and a few neighbours), built with correct
  framing.
* :func:`mutations` -- an endless, reproducible stream of mutated PDUs: bit flips,
  byte values, truncations, insertions, wrong command_length values, random and
  malformed TLVs, header fields, spliced bodies and hostile field values. The
  command_length of a mutated PDU is right most of the time (so the codec and the
  edge checks are reached) and deliberately wrong otherwise.

The builders below write PDUs octet by octet, without the codec's limits, so they
can express what the codec would refuse to encode.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Iterator

__all__ = [
    "BIND_SEQUENCE",
    "ENQUIRE_SEQUENCE",
    "FIXTURES",
    "HOSTILE_PDUS",
    "SUBMIT_SEQUENCES",
    "UNBIND_SEQUENCE",
    "deliver_sm",
    "mutate",
    "mutations",
    "pdu",
    "tlv",
]

GENERIC_NACK: Final = 0x80000000
BIND_TRANSCEIVER_RESP: Final = 0x80000009
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
UNBIND: Final = 0x00000006
UNBIND_RESP: Final = 0x80000006
ENQUIRE_LINK: Final = 0x00000015
ENQUIRE_LINK_RESP: Final = 0x80000015

#: The sequence of the bind a binding ESME has outstanding.
BIND_SEQUENCE: Final = 1
#: The submit_sm sequences a bound ESME has outstanding.
SUBMIT_SEQUENCES: Final = (2, 3, 4, 5)
#: The enquire_link a bound ESME has outstanding.
ENQUIRE_SEQUENCE: Final = 6
#: The unbind an unbinding ESME has outstanding.
UNBIND_SEQUENCE: Final = 7

TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_MESSAGE_STATE: Final = 0x0427
TAG_NETWORK_ERROR_CODE: Final = 0x0423
TAG_MESSAGE_PAYLOAD: Final = 0x0424
TAG_SAR_MSG_REF_NUM: Final = 0x020C
TAG_SAR_TOTAL_SEGMENTS: Final = 0x020E
TAG_SAR_SEGMENT_SEQNUM: Final = 0x020F
TAG_SC_INTERFACE_VERSION: Final = 0x0210


# --- builders ---------------------------------------------------------------------------


def pdu(command_id: int, body: bytes = b"", *, status: int = 0, sequence: int = 1) -> bytes:
    """A PDU with the right command_length."""
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def tlv(tag: int, value: bytes, *, length: int | None = None) -> bytes:
    """One optional parameter; ``length`` overrides the stated length."""
    return struct.pack(">HH", tag, len(value) if length is None else length) + value


def deliver_sm(
    *,
    sequence: int = 0x100,
    service_type: bytes = b"",
    source_addr: bytes = b"84912345678",
    destination_addr: bytes = b"8079",
    esm_class: int = 0,
    schedule_delivery_time: bytes = b"",
    validity_period: bytes = b"",
    data_coding: int = 0,
    short_message: bytes = b"",
    tlvs: bytes = b"",
) -> bytes:
    """A deliver_sm written octet by octet (no field limits; sm_length is the
    short_message length modulo 256)."""
    body = b"".join(
        (
            service_type,
            b"\0\x01\x01",  # NUL, source_addr_ton 1, source_addr_npi 1
            source_addr,
            b"\0\x00\x00",  # NUL, dest_addr_ton 0, dest_addr_npi 0
            destination_addr,
            b"\0",
            bytes((esm_class, 0, 0)),  # esm_class, protocol_id, priority_flag
            schedule_delivery_time,
            b"\0",
            validity_period,
            b"\0",
            bytes((0, 0, data_coding, 0, len(short_message) & 0xFF)),
            short_message,
            tlvs,
        )
    )
    return pdu(DELIVER_SM, body, sequence=sequence)


def _receipt_text(message_id: bytes, stat: bytes = b"DELIVRD", err: bytes = b"000") -> bytes:
    return (
        b"id:" + message_id + b" sub:001 dlvrd:001 submit date:2110151230 "
        b"done date:2110151231 stat:" + stat + b" err:" + err + b" text:Cap lai mat khau"
    )


# --- fixtures -----------------------------------------------------------------------------

#: One valid PDU of every kind an SMSC sends (see the module docstring).
FIXTURES: Final[list[tuple[str, bytes]]] = [
    ("deliver_sm_mo", deliver_sm(short_message=b"BH MK 0123456789")),
    (
        "deliver_sm_mo_payload",
        deliver_sm(tlvs=tlv(TAG_MESSAGE_PAYLOAD, b"BH MK 0123456789")),
    ),
    (
        "deliver_sm_mo_ucs2",
        deliver_sm(data_coding=0x08, short_message="BH MK 0123456789".encode("utf-16-be")),
    ),
    (
        "deliver_sm_mo_udh_part",
        deliver_sm(esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x02\x01BH MK 01234"),
    ),
    (
        "deliver_sm_mo_sar_part",
        deliver_sm(
            short_message=b"BH MK 01234",
            tlvs=tlv(TAG_SAR_MSG_REF_NUM, b"\x00\x2a")
            + tlv(TAG_SAR_TOTAL_SEGMENTS, b"\x02")
            + tlv(TAG_SAR_SEGMENT_SEQNUM, b"\x01"),
        ),
    ),
    ("receipt_text", deliver_sm(esm_class=0x04, short_message=_receipt_text(b"0489708364"))),
    (
        "receipt_tlv",
        deliver_sm(
            esm_class=0x04,
            short_message=_receipt_text(b"0489708364"),
            tlvs=tlv(TAG_RECEIPTED_MESSAGE_ID, b"1d305b4c\0")
            + tlv(TAG_MESSAGE_STATE, b"\x02")
            + tlv(TAG_NETWORK_ERROR_CODE, b"\x03\x00\x00"),
        ),
    ),
    ("submit_sm_resp", pdu(SUBMIT_SM_RESP, b"1d305b4c\0", sequence=SUBMIT_SEQUENCES[0])),
    (
        "submit_sm_resp_error",
        pdu(SUBMIT_SM_RESP, status=0x58, sequence=SUBMIT_SEQUENCES[1]),
    ),
    ("enquire_link", pdu(ENQUIRE_LINK, sequence=0x200)),
    ("enquire_link_resp", pdu(ENQUIRE_LINK_RESP, sequence=ENQUIRE_SEQUENCE)),
    ("unbind", pdu(UNBIND, sequence=0x201)),
    ("unbind_resp", pdu(UNBIND_RESP, sequence=UNBIND_SEQUENCE)),
    ("generic_nack", pdu(GENERIC_NACK, status=0x03, sequence=SUBMIT_SEQUENCES[2])),
    (
        "bind_transceiver_resp",
        pdu(
            BIND_TRANSCEIVER_RESP,
            b"SMSC\0" + tlv(TAG_SC_INTERFACE_VERSION, b"\x34"),
            sequence=BIND_SEQUENCE,
        ),
    ),
]

#: One named PDU for each input that crashed the daemon downstream of the core,
#: and its neighbours; every one correctly framed.
HOSTILE_PDUS: Final[list[tuple[str, bytes]]] = [
    (
        "deliver_sm_source_addr_25_octets",
        deliver_sm(sequence=0x101, source_addr=b"8491234567890123456789012", short_message=b"x"),
    ),
    (
        "deliver_sm_source_addr_non_ascii",
        deliver_sm(sequence=0x102, source_addr=b"84912\xe945678", short_message=b"BH MK"),
    ),
    ("deliver_sm_source_addr_empty", deliver_sm(sequence=0x103, source_addr=b"")),
    (
        "deliver_sm_destination_addr_21_octets",
        deliver_sm(sequence=0x104, destination_addr=b"8079" * 5 + b"8"),
    ),
    (
        "receipt_text_id_5000_digits",
        deliver_sm(
            sequence=0x105,
            esm_class=0x04,
            tlvs=tlv(TAG_MESSAGE_PAYLOAD, _receipt_text(b"9" * 5000)),
        ),
    ),
    (
        "receipt_text_id_1800_digits",
        deliver_sm(
            sequence=0x106,
            esm_class=0x04,
            tlvs=tlv(TAG_MESSAGE_PAYLOAD, _receipt_text(b"9" * 1800)),
        ),
    ),
    (
        "receipt_tlv_id_5000_digits",
        deliver_sm(
            sequence=0x107,
            esm_class=0x04,
            tlvs=tlv(TAG_RECEIPTED_MESSAGE_ID, b"7" * 5000 + b"\0") + tlv(TAG_MESSAGE_STATE, b"\2"),
        ),
    ),
    (
        "receipt_text_id_non_ascii",
        deliver_sm(sequence=0x108, esm_class=0x04, short_message=_receipt_text(b"12\xe934")),
    ),
    (
        "receipt_stat_and_err_300_octets",
        deliver_sm(
            sequence=0x109,
            esm_class=0x04,
            tlvs=tlv(TAG_MESSAGE_PAYLOAD, _receipt_text(b"42", b"D" * 300, b"0" * 300)),
        ),
    ),
    (
        "submit_sm_resp_id_5000_digits",
        pdu(SUBMIT_SM_RESP, b"1" * 5000 + b"\0", sequence=SUBMIT_SEQUENCES[0]),
    ),
    (
        "submit_sm_resp_id_non_ascii",
        pdu(SUBMIT_SM_RESP, b"1d30\xe95b4c\0", sequence=SUBMIT_SEQUENCES[1]),
    ),
    (
        "deliver_sm_message_payload_65535_octets",
        deliver_sm(sequence=0x10A, tlvs=tlv(TAG_MESSAGE_PAYLOAD, b"A" * 65535)),
    ),
    (
        "deliver_sm_message_payload_2001_octets",
        deliver_sm(sequence=0x10B, tlvs=tlv(TAG_MESSAGE_PAYLOAD, b"A" * 2001)),
    ),
    (
        "deliver_sm_ucs2_lone_surrogate_and_nul",
        deliver_sm(sequence=0x10C, data_coding=0x08, short_message=b"\xd8\x00\x00\x00\x00B"),
    ),
    (
        "deliver_sm_latin1_nul",
        deliver_sm(sequence=0x10D, data_coding=0x03, short_message=b"BH\x00MK"),
    ),
    (
        "deliver_sm_service_type_and_times_non_ascii",
        deliver_sm(
            sequence=0x10E,
            service_type=b"\xe9\xe9\xe9\xe9\xe9\xe9\xe9",
            schedule_delivery_time=b"\xff" * 30,
            validity_period=b"\x01",
            short_message=b"BH MK 0123456789",
        ),
    ),
]


# --- the mutator --------------------------------------------------------------------------

_INTERESTING_OCTETS: Final = (0x00, 0x01, 0x1B, 0x20, 0x30, 0x7E, 0x7F, 0x80, 0xE9, 0xFF)
_COMMAND_IDS: Final = (
    GENERIC_NACK,
    0x00000001,
    0x80000001,
    0x00000002,
    0x80000002,
    0x00000009,
    BIND_TRANSCEIVER_RESP,
    0x00000004,
    SUBMIT_SM_RESP,
    DELIVER_SM,
    0x80000005,
    UNBIND,
    UNBIND_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    0x00000103,
    0x00000999,
)
_TLV_TAGS: Final = (
    TAG_RECEIPTED_MESSAGE_ID,
    TAG_MESSAGE_STATE,
    TAG_NETWORK_ERROR_CODE,
    TAG_MESSAGE_PAYLOAD,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_TOTAL_SEGMENTS,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SC_INTERFACE_VERSION,
    0x0204,  # user_message_reference (2 octets)
    0x0426,  # more_messages_to_send
    0x1401,  # vendor
    0x0000,
    0xFFFF,
)
_SEEDS: Final = FIXTURES + HOSTILE_PDUS
_DELIVER_FIELDS: Final = (
    "service_type",
    "source_addr",
    "destination_addr",
    "schedule_delivery_time",
    "validity_period",
)


def _blob(rng: random.Random) -> bytes:
    """Field content a hostile or broken SMSC might write."""
    kind = rng.randrange(8)
    n = rng.choice((0, 1, 5, 16, 20, 21, 25, 64, 65, 300, rng.randrange(3000)))
    if kind == 0:
        return b"9" * n
    if kind == 1:
        return b"\xe9" * n
    if kind == 2:
        return bytes(rng.choice(_INTERESTING_OCTETS) for _ in range(min(n, 40)))
    if kind == 3:
        return rng.randbytes(min(n, 64)).replace(b"\0", b"\1")
    if kind == 4:
        return b"84912345678"[: rng.randrange(12)] + bytes([rng.randrange(256)])
    if kind == 5:
        return rng.choice((b"", b" ", b"+84912345678", b"0912345678", b"8079", b"\x7f"))
    if kind == 6:
        return rng.randbytes(min(n, 64))  # may hold a NUL: shifts every field after it
    return b"1d305b4c"[: rng.randrange(9)] + b"\xe9" * rng.randrange(3)


def _hostile_deliver_sm(rng: random.Random) -> bytes:
    """A deliver_sm with hostile values in some of its fields."""
    fields: dict[str, bytes] = {}
    for name in rng.sample(_DELIVER_FIELDS, rng.randrange(1, 3)):
        fields[name] = _blob(rng).replace(b"\0", b"\1")
    esm_class = rng.choice((0x00, 0x04, 0x08, 0x20, 0x40, 0x44, rng.randrange(256)))
    data_coding = rng.choice((0x00, 0x01, 0x03, 0x08, 0xF0, 0xF4, rng.randrange(256)))
    body_kind = rng.randrange(4)
    short_message = b""
    tlvs = b""
    if body_kind == 0:
        short_message = _blob(rng)[:254]
    elif body_kind == 1:
        size = rng.choice((0, 1, 254, 2000, 2001, rng.randrange(70000)))
        tlvs = tlv(TAG_MESSAGE_PAYLOAD, rng.randbytes(min(size, 65535)))
    elif body_kind == 2:
        message_id = _blob(rng)
        short_message = _receipt_text(message_id[:200], _blob(rng)[:40], _blob(rng)[:40])[:254]
    else:
        state = bytes([rng.randrange(10)]) if rng.random() < 0.8 else _blob(rng)[:8]
        tlvs = tlv(TAG_RECEIPTED_MESSAGE_ID, _blob(rng) + b"\0"[: rng.randrange(2)])
        tlvs += tlv(TAG_MESSAGE_STATE, state)
    return deliver_sm(
        sequence=rng.choice((0x100, 0x300, rng.randrange(1 << 32))),
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
        **fields,
    )


def _hostile_submit_sm_resp(rng: random.Random) -> bytes:
    body = _blob(rng)
    if rng.random() < 0.8:
        body += b"\0"
    status = 0 if rng.random() < 0.8 else rng.choice((0x08, 0x58, rng.randrange(1 << 32)))
    return pdu(SUBMIT_SM_RESP, body, status=status, sequence=rng.choice(SUBMIT_SEQUENCES))


def _flip(rng: random.Random, data: bytearray) -> None:
    if data:
        pos = rng.randrange(16, len(data)) if len(data) > 16 and rng.random() < 0.8 else None
        if pos is None:
            pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)


def _set_octet(rng: random.Random, data: bytearray) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.choice(_INTERESTING_OCTETS)


def _cut(rng: random.Random, data: bytearray) -> None:
    if len(data) > 1:
        start = rng.randrange(len(data))
        if rng.random() < 0.5:
            del data[start:]
        else:
            del data[start : start + rng.randrange(1, 9)]


def _insert(rng: random.Random, data: bytearray) -> None:
    pos = rng.randrange(len(data) + 1)
    extra = rng.randbytes(rng.randrange(1, 9)) if rng.random() < 0.7 else _blob(rng)
    data[pos:pos] = extra


def _header(rng: random.Random, data: bytearray) -> None:
    if len(data) < 16:
        return
    which = rng.randrange(3)
    if which == 0:
        value = rng.choice((*_COMMAND_IDS, rng.randrange(1 << 32)))
        struct.pack_into(">I", data, 4, value)
    elif which == 1:
        struct.pack_into(">I", data, 8, rng.choice((0, 0x58, 0xFFFFFFFF, rng.randrange(1 << 32))))
    else:
        value = rng.choice(
            (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, *SUBMIT_SEQUENCES, rng.randrange(1 << 32))
        )
        struct.pack_into(">I", data, 12, value)


def _append_tlv(rng: random.Random, data: bytearray) -> None:
    tag = rng.choice((*_TLV_TAGS, rng.randrange(1 << 16)))
    value = _blob(rng) if rng.random() < 0.5 else rng.randbytes(rng.randrange(6))
    length = None if rng.random() < 0.85 else rng.randrange(1 << 16)
    data += tlv(tag, value, length=length)


def _splice(rng: random.Random, data: bytearray) -> None:
    _, other = rng.choice(_SEEDS)
    data[16:] = other[16:]


_OPERATORS: Final[tuple[Callable[[random.Random, bytearray], None], ...]] = (
    _flip,
    _flip,
    _set_octet,
    _cut,
    _insert,
    _header,
    _append_tlv,
    _append_tlv,
    _splice,
)

#: command_length values worth trying, relative to the PDU's real length ``n``.
_LENGTHS: Final[tuple[Callable[[int, random.Random], int], ...]] = (
    lambda n, rng: 0,
    lambda n, rng: 15,
    lambda n, rng: 16,
    lambda n, rng: max(0, n - 1),
    lambda n, rng: n + 1,
    lambda n, rng: n + rng.randrange(1, 64),
    lambda n, rng: 65536,
    lambda n, rng: 65537,
    lambda n, rng: 1 << 20,
    lambda n, rng: (1 << 20) + 1,
    lambda n, rng: 0xFFFFFFFF,
    lambda n, rng: rng.randrange(1 << 32),
)


def mutate(rng: random.Random) -> bytes:
    """One mutated PDU (see the module docstring)."""
    start = rng.random()
    if start < 0.25:
        data = bytearray(_hostile_deliver_sm(rng))
    elif start < 0.32:
        data = bytearray(_hostile_submit_sm_resp(rng))
    else:
        data = bytearray(rng.choice(_SEEDS)[1])
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 5))):
        rng.choice(_OPERATORS)(rng, data)
    if len(data) >= 4:
        if rng.random() < 0.85:
            struct.pack_into(">I", data, 0, len(data))
        elif rng.random() < 0.5:
            struct.pack_into(">I", data, 0, rng.choice(_LENGTHS)(len(data), rng))
    return bytes(data)


def mutations(rng: random.Random) -> Iterator[bytes]:
    """Endless mutated PDUs, reproducible from the state of ``rng``."""
    while True:
        yield mutate(rng)
