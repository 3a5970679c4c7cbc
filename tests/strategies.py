"""Hypothesis strategies shared by the property tests (one module, as in attrs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from hypothesis import strategies as st

from smscd.smpp import (
    MAX_SEQUENCE,
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
    encode,
)
from tests.fuzz import mutate

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "c_strings",
    "events",
    "hostile_deliver_sms",
    "message_id_strings",
    "octets",
    "pdu_streams",
    "requests",
    "sequences",
    "short_message_pdus",
    "smsc_pdus",
    "statuses",
    "tlvs",
]

sequences = st.integers(min_value=1, max_value=MAX_SEQUENCE)
statuses = st.integers(min_value=0, max_value=0xFFFFFFFF)
octets = st.integers(min_value=0, max_value=255)
modes = st.sampled_from(BindMode)


def c_strings(max_len: int) -> st.SearchStrategy[str]:
    """C-string values as decode() produces them: ASCII, bytes >= 0x80 as lone
    surrogates (surrogateescape), never NUL; ``max_len`` excludes the NUL."""
    return st.binary(max_size=max_len).map(
        lambda raw: raw.replace(b"\0", b"0").decode("ascii", "surrogateescape")
    )


tlvs = st.lists(
    st.builds(
        Tlv,
        tag=st.integers(min_value=0, max_value=0xFFFF),
        value=st.binary(max_size=40),
    ),
    max_size=4,
).map(tuple)


def short_message_pdus(
    cls: type[SubmitSm] | type[DeliverSm],
    strings: Callable[[int], st.SearchStrategy[str]] = c_strings,
) -> st.SearchStrategy[SubmitSm | DeliverSm]:
    """submit_sm or deliver_sm with every field drawn; ``strings`` makes the
    C-string fields (decoder-shaped by default)."""
    return st.builds(
        cls,
        sequence=sequences,
        service_type=strings(5),
        source_addr_ton=octets,
        source_addr_npi=octets,
        source_addr=strings(20),
        dest_addr_ton=octets,
        dest_addr_npi=octets,
        destination_addr=strings(20),
        esm_class=octets,
        protocol_id=octets,
        priority_flag=octets,
        schedule_delivery_time=strings(16),
        validity_period=strings(16),
        registered_delivery=octets,
        replace_if_present_flag=octets,
        data_coding=octets,
        sm_default_msg_id=octets,
        short_message=st.binary(max_size=254),
        tlvs=tlvs,
    )


requests: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        Bind,
        sequence=sequences,
        mode=modes,
        system_id=c_strings(15),
        password=c_strings(8),
        system_type=c_strings(12),
        interface_version=octets,
        addr_ton=octets,
        addr_npi=octets,
        address_range=c_strings(40),
    ),
    st.builds(Unbind, sequence=sequences),
    st.builds(EnquireLink, sequence=sequences),
    short_message_pdus(SubmitSm),
    short_message_pdus(DeliverSm),
)

responses: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        BindResp,
        sequence=sequences,
        command_status=statuses,
        mode=modes,
        system_id=c_strings(15),
        tlvs=tlvs,
    ),
    st.builds(UnbindResp, sequence=sequences, command_status=statuses),
    st.builds(EnquireLinkResp, sequence=sequences, command_status=statuses),
    st.builds(SubmitSmResp, sequence=sequences, command_status=statuses, message_id=c_strings(64)),
    st.builds(DeliverSmResp, sequence=sequences, command_status=statuses),
    st.builds(GenericNack, sequence=st.integers(0, 0xFFFFFFFF), command_status=statuses),
)

events: st.SearchStrategy[Event] = st.one_of(requests, responses)


@st.composite
def pdu_streams(draw: st.DrawFn) -> bytes:
    """Valid PDUs back to back, then damaged: bytes flipped, cut or inserted.

    Reaches far deeper into the decoder than uniformly random bytes, whose first
    four octets almost always make an impossible command_length.
    """
    stream = bytearray(b"".join(encode(e) for e in draw(st.lists(events, min_size=1, max_size=4))))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(stream) - 1)))
        if action == "flip" and stream:
            stream[pos] = draw(octets)
        elif action == "cut":
            del stream[pos : pos + draw(st.integers(1, 8))]
        else:
            stream[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(stream)


# --- what an SMSC sends to the ESME, valid and hostile ---------------------------------------

#: Field values a broken or hostile SMSC writes: empty, just over a limit, far over
#: it, non-ASCII, control octets, or anything at all (never NUL: that ends a C-string).
hostile_field_bytes: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"", b" ", b"8" * 20, b"8" * 21, b"\xe9", b"849\x7f", b"+84912345678"]),
    st.integers(0, 5000).map(lambda n: b"9" * n),
).map(lambda raw: raw.replace(b"\0", b"\1"))


@st.composite
def hostile_deliver_sms(draw: st.DrawFn) -> bytes:
    """A correctly framed deliver_sm (MO or receipt) with hostile field values."""
    body = draw(st.sampled_from(["short_message", "payload", "receipt_text", "receipt_tlv"]))
    short_message = b""
    tlv_bytes = b""
    if body == "short_message":
        short_message = draw(st.binary(max_size=254))
    elif body == "payload":
        size = draw(st.sampled_from([0, 1, 2000, 2001, 5000]) | st.integers(0, 2100))
        tlv_bytes = mutate.tlv(0x0424, draw(st.binary(min_size=size, max_size=size)))
    elif body == "receipt_text":
        short_message = (
            b"id:"
            + draw(hostile_field_bytes)[:200]
            + b" stat:"
            + draw(hostile_field_bytes)[:20]
            + b" err:"
            + draw(hostile_field_bytes)[:20]
        )[:254]
    else:
        tlv_bytes = mutate.tlv(0x001E, draw(hostile_field_bytes) + b"\0") + mutate.tlv(
            0x0427, draw(st.binary(max_size=2))
        )
    return mutate.deliver_sm(
        sequence=draw(sequences),
        service_type=draw(hostile_field_bytes),
        source_addr=draw(hostile_field_bytes),
        destination_addr=draw(hostile_field_bytes),
        esm_class=draw(st.sampled_from([0x00, 0x04, 0x08, 0x20, 0x40]) | octets),
        schedule_delivery_time=draw(hostile_field_bytes),
        validity_period=draw(hostile_field_bytes),
        data_coding=draw(st.sampled_from([0x00, 0x03, 0x08, 0xF4]) | octets),
        short_message=short_message,
        tlvs=tlv_bytes,
    )


_SUBMIT_SM_RESPS: Final = st.builds(
    lambda body, nul, seq: mutate.pdu(0x80000004, body + nul, sequence=seq),
    hostile_field_bytes,
    st.sampled_from([b"\0", b""]),
    st.sampled_from(mutate.SUBMIT_SEQUENCES),
)


@st.composite
def smsc_pdus(draw: st.DrawFn) -> bytes:
    """One PDU as an SMSC might send it to the ESME: a fixture of every kind, a
    named hostile PDU or a hostile deliver_sm/submit_sm_resp, then damaged (bits
    flipped, octets set, cut, bytes inserted, TLVs appended, header fields
    changed) and, now and then, given a wrong command_length."""
    seeds = [raw for _, raw in mutate.FIXTURES + mutate.HOSTILE_PDUS]
    data = bytearray(draw(st.sampled_from(seeds) | hostile_deliver_sms() | _SUBMIT_SM_RESPS))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["flip", "octet", "cut", "insert", "tlv", "header"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "octet" and data:
            data[pos] = draw(octets)
        elif action == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif action == "tlv":
            data += mutate.tlv(
                draw(
                    st.sampled_from([0x001E, 0x0424, 0x0427, 0x0423, 0x020E])
                    | st.integers(0, 0xFFFF)
                ),
                draw(st.binary(max_size=40)),
                length=draw(st.none() | st.integers(0, 0xFFFF)),
            )
        elif action == "header" and len(data) >= 16:
            field = draw(st.sampled_from([4, 8, 12]))
            data[field : field + 4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
    if len(data) >= 4:
        length = draw(st.sampled_from(["right", "right", "right", "as is", "any"]))
        if length == "right":
            data[:4] = len(data).to_bytes(4, "big")
        elif length == "any":
            data[:4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
    return bytes(data)


#: Message ids as any layer might hold them: text, codec C-strings with lone
#: surrogates, Latin-1 receipt text, very long digit strings.
message_id_strings: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=100).map(lambda raw: raw.decode("ascii", "surrogateescape")),
    st.binary(max_size=100).map(lambda raw: raw.decode("latin-1")),
    st.integers(0, 6000).map(lambda n: "7" * n),
    st.from_regex(r"\s*0*[0-9a-fA-F]{1,24}\s*", fullmatch=True),
)
