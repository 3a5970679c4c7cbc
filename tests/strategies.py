"""Hypothesis strategies shared by the property tests (one module, as in attrs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "c_strings",
    "events",
    "octets",
    "pdu_streams",
    "requests",
    "sequences",
    "short_message_pdus",
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
