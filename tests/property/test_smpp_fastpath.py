"""The codec's fast paths are the smpplib reference, only faster.

1. encode(e) == reference_encode(e), byte for byte, for every event type: for
   the common case the fast path handles (ASCII strings within their limits),
   for what it hands back to the reference (non-ASCII octets), and for events
   that cannot be encoded at all (the same LocalProtocolError, same message).
2. decode(raw) == reference_decode(raw) for well-formed and damaged PDUs: the
   same event, or the same rejection (message, sequence, status and reply).
3. The fast paths are really taken for the traffic's PDUs (with the reference
   made to fail, they still encode and decode).
4. GSM 03.38 text: the ASCII fast path of encode_gsm7 and of the data_coding 0
   decoder gives what the character tables give, for any text and any bytes.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smscd import gsm7
from smscd.smpp import (
    MAX_SEQUENCE,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Event,
    GenericNack,
    LocalProtocolError,
    PduRejected,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
    _codec,
    decode,
    decode_short_message,
    encode,
    encode_gsm7,
)
from smscd.smpp._codec import reference_decode, reference_encode
from tests.strategies import events, octets, sequences, short_message_pdus, statuses

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ascii_strings(max_len: int) -> st.SearchStrategy[str]:
    """What real traffic carries: printable-ish ASCII without NUL."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=max_len)


#: Every event type the fast path covers, in the common (ASCII) case.
fast_events: st.SearchStrategy[Event] = st.one_of(
    short_message_pdus(SubmitSm, ascii_strings),
    short_message_pdus(DeliverSm, ascii_strings),
    st.builds(
        SubmitSmResp, sequence=sequences, command_status=statuses, message_id=ascii_strings(64)
    ),
    st.builds(DeliverSmResp, sequence=sequences, command_status=statuses),
    st.builds(EnquireLink, sequence=sequences),
    st.builds(EnquireLinkResp, sequence=sequences, command_status=statuses),
    st.builds(Unbind, sequence=sequences),
    st.builds(UnbindResp, sequence=sequences, command_status=statuses),
    st.builds(GenericNack, sequence=st.integers(0, 0xFFFFFFFF), command_status=statuses),
)

#: Out of range or over-long: neither path may encode these.
_bad_ints = st.one_of(st.integers(max_value=-1), st.integers(min_value=256))


@st.composite
def broken_events(draw: st.DrawFn) -> Event:
    event = draw(fast_events)
    if isinstance(event, SubmitSm | DeliverSm):
        choice = draw(st.sampled_from(["int", "long", "nul", "body", "sequence", "tlv"]))
        match choice:
            case "int":
                bad = draw(_bad_ints)
                return draw(
                    st.sampled_from(
                        [
                            attrs.evolve(event, source_addr_ton=bad),
                            attrs.evolve(event, esm_class=bad),
                            attrs.evolve(event, data_coding=bad),
                        ]
                    )
                )
            case "long":
                return attrs.evolve(event, source_addr="1" * 21)
            case "nul":
                return attrs.evolve(event, destination_addr="84\0")
            case "body":
                return attrs.evolve(event, short_message=bytes(255))
            case "sequence":
                return attrs.evolve(event, sequence=MAX_SEQUENCE * 3)
            case _:
                return attrs.evolve(event, tlvs=(Tlv(tag=0x10000, value=b""),))
    if isinstance(event, SubmitSmResp):
        return SubmitSmResp(sequence=event.sequence, message_id="x" * 65)
    if isinstance(event, EnquireLink | Unbind):
        return attrs.evolve(event, sequence=-draw(sequences))
    assert isinstance(event, DeliverSmResp | EnquireLinkResp | UnbindResp | GenericNack)
    return attrs.evolve(event, command_status=1 << 32)


def _encoded(encoder: object, event: Event) -> object:
    assert callable(encoder)
    try:
        raw: bytes = encoder(event)
    except LocalProtocolError as exc:
        return ("error", str(exc))
    return raw


@SETTINGS
@given(fast_events)
def test_fast_encode_is_the_reference_encode(event: Event) -> None:
    raw = encode(event)
    assert raw == reference_encode(event)
    assert decode(raw) == event


@SETTINGS
@given(events)
def test_any_event_encodes_as_the_reference(event: Event) -> None:
    # Non-ASCII octets (lone surrogates), binds: handed to the reference.
    assert encode(event) == reference_encode(event)


@SETTINGS
@given(broken_events())
def test_unencodable_events_fail_as_the_reference(event: Event) -> None:
    fast = _encoded(encode, event)
    assert isinstance(fast, tuple)
    assert fast == _encoded(reference_encode, event)


def _decoded(decoder: object, raw: bytes) -> object:
    assert callable(decoder)
    try:
        event: Event = decoder(raw)
    except PduRejected as exc:
        return ("rejected", str(exc), exc.sequence, exc.command_status, exc.reply)
    return event


@st.composite
def damaged_pdus(draw: st.DrawFn) -> bytes:
    """One PDU (its command_length kept right) with its body flipped, cut or grown."""
    raw = bytearray(encode(draw(st.one_of(fast_events, events))))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        body_len = len(raw) - 16
        pos = 16 + draw(st.integers(0, max(0, body_len - 1)))
        if action == "flip" and body_len:
            raw[pos] = draw(st.sampled_from([0, 1, 0x30, 0xFF, draw(octets)]))
        elif action == "cut" and body_len:
            del raw[pos : pos + draw(st.integers(1, 8))]
        else:
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    raw[:4] = len(raw).to_bytes(4, "big")
    return bytes(raw)


@SETTINGS
@given(damaged_pdus())
def test_fast_decode_is_the_reference_decode(raw: bytes) -> None:
    assert _decoded(decode, raw) == _decoded(reference_decode, raw)


SUBMIT = SubmitSm(
    sequence=7,
    source_addr_ton=5,
    source_addr="8079",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="84327000686",
    registered_delivery=1,
    short_message=b"So dien thoai va ma so BHXH khong khop",
)
DELIVER = DeliverSm(
    sequence=8,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="84327000686",
    destination_addr="8079",
    short_message=b"BH MK 0123456789",
    tlvs=(Tlv(tag=0x1401, value=b"\x01"),),
)
TRAFFIC: list[Event] = [
    SUBMIT,
    DELIVER,
    SubmitSmResp(sequence=7, message_id="1d305b4c"),
    SubmitSmResp(sequence=7, command_status=0x58),
    DeliverSmResp(sequence=8),
    EnquireLink(sequence=9),
    EnquireLinkResp(sequence=9),
    GenericNack(sequence=9, command_status=3),
]


@pytest.mark.parametrize("event", TRAFFIC, ids=lambda e: type(e).__name__)
def test_the_traffic_takes_the_fast_paths(event: Event, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = reference_encode(event)

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the reference path was used")

    monkeypatch.setattr(_codec, "reference_encode", refuse)
    monkeypatch.setattr(_codec, "_smpplib_generate", refuse)
    monkeypatch.setattr(_codec, "read_fields", refuse)
    monkeypatch.setattr(_codec, "_decode_sm_reference", refuse)
    assert encode(event) == expected
    assert decode(expected) == event


def test_non_ascii_addresses_still_encode_exactly() -> None:
    event = SubmitSm(sequence=1, source_addr="80\udcff9", short_message=b"x")
    raw = encode(event)
    assert raw == reference_encode(event)
    assert b"80\xff9\x00" in raw
    assert decode(raw) == event


# --- GSM 03.38 text: the ASCII fast path against the character tables ------------

# The reference tables, built here from the two published GSM 03.38 tables.
_BY_CHAR = {
    **{ch: bytes([code]) for code, ch in enumerate(gsm7.BASIC) if code != 0x1B},
    **{ch: bytes([0x1B, code]) for code, ch in gsm7.EXTENSION.items()},
}
_GSM_CHARS = "".join(_BY_CHAR)


def _encode_by_table(text: str) -> bytes | None:
    try:
        return b"".join(_BY_CHAR[ch] for ch in text)
    except KeyError:
        return None


def _decode_by_table(payload: bytes) -> str:
    out = []
    escaped = False
    for octet in payload:
        if octet > 0x7F:
            out.append("\ufffd")
            escaped = False
        elif escaped:
            out.append(gsm7.EXTENSION.get(octet, gsm7.BASIC[octet]))
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            out.append(gsm7.BASIC[octet])
    if escaped:
        out.append(" ")
    return "".join(out)


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.text(_GSM_CHARS, max_size=200), ascii_strings(200)))
def test_gsm7_encode_is_the_table_encode(text: str) -> None:
    expected = _encode_by_table(text)
    if expected is None:
        with pytest.raises(LocalProtocolError):
            encode_gsm7(text)
    else:
        assert encode_gsm7(text) == expected


@SETTINGS
@given(st.one_of(st.binary(max_size=200), ascii_strings(200).map(str.encode)))
def test_gsm7_decode_is_the_table_decode(payload: bytes) -> None:
    assert decode_short_message(0, payload) == _decode_by_table(payload)


def test_gsm7_fast_path_keeps_the_characters_ascii_reads_differently() -> None:
    assert encode_gsm7("Mat khau: 123456") == b"Mat khau: 123456"
    assert encode_gsm7("a_b@c$") == b"a\x11b\x00c\x02"
    assert decode_short_message(0, b"BH MK 0123456789") == "BH MK 0123456789"
    assert decode_short_message(0, b"a\x11b\x00c\x02") == "a_b@c$"
