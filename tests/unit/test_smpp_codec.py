"""The PDU codec against PDUs written by hand from the SMPP 3.4 layout (§4)."""

from __future__ import annotations

import pytest

from smscd.smpp import (
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Event,
    FramingError,
    GenericNack,
    LocalProtocolError,
    PduRejected,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
    decode,
    encode,
)


def h(*parts: str) -> bytes:
    """Hex with spaces and per-field grouping, as the spec tables read."""
    return bytes.fromhex("".join(parts).replace(" ", ""))


def pdu(header_rest: str, *body: str) -> bytes:
    """command_id, command_status, sequence as hex, then the body; length computed."""
    rest = h(header_rest, *body)
    return (4 + len(rest)).to_bytes(4, "big") + rest


RECEIPT_TEXT = (
    b"id:1d305b4c sub:001 dlvrd:001 submit date:2110151230 done date:2110151231 "
    b"stat:DELIVRD err:000 text:Cap lai"
)

#: (name, wire bytes, event): encode(event) == wire and decode(wire) == event.
FIXTURES: list[tuple[str, bytes, Event]] = [
    (
        "bind_transceiver",
        h(
            "0000002b 00000009 00000000 00000001",  # length 43, bind_transceiver, seq 1
            "76737338303739 00",  # system_id "vss8079"
            "73336372337400",  # password "s3cr3t"
            "564d41 00",  # system_type "VMA"
            "34 01 01",  # interface_version 0x34, addr_ton 1, addr_npi 1
            "3830373900",  # address_range "8079"
        ),
        Bind(
            sequence=1,
            mode=BindMode.TRANSCEIVER,
            system_id="vss8079",
            password="s3cr3t",
            system_type="VMA",
            addr_ton=1,
            addr_npi=1,
            address_range="8079",
        ),
    ),
    (
        "bind_transmitter",
        h("00000019 00000002 00000000 00000007", "6100 6200 00 34 00 00 00"),
        Bind(sequence=7, mode=BindMode.TRANSMITTER, system_id="a", password="b"),
    ),
    (
        "bind_receiver_resp",
        h("00000015 80000001 00000000 00000003", "534d534300"),
        BindResp(sequence=3, mode=BindMode.RECEIVER, system_id="SMSC"),
    ),
    (
        "bind_transceiver_resp with sc_interface_version",
        h("00000017 80000009 00000000 00000001", "5800", "0210 0001 34"),
        BindResp(
            sequence=1,
            mode=BindMode.TRANSCEIVER,
            system_id="X",
            tlvs=(Tlv(tag=0x0210, value=b"\x34"),),
        ),
    ),
    (
        "bind_transceiver_resp failed, no body",
        h("00000010 80000009 0000000e 00000001"),
        BindResp(
            sequence=1,
            mode=BindMode.TRANSCEIVER,
            command_status=CommandStatus.ESME_RINVPASWD,
        ),
    ),
    (
        "submit_sm",
        h(
            "00000045 00000004 00000000 00000002",
            "00",  # service_type ""
            "05 00 3830373900",  # source ton 5, npi 0, "8079"
            "01 01 383439313233343536373800",  # dest ton 1, npi 1, "84912345678"
            "00 00 00",  # esm_class, protocol_id, priority_flag
            "00 00",  # schedule_delivery_time "", validity_period ""
            "01 00 00 00",  # registered_delivery 1, replace 0, data_coding 0, default id 0
            "0f 436170206c6169206d6174206b6861",  # sm_length 15, "Cap lai mat kha"
            "0204 0002 002a",  # user_message_reference 42
        ),
        SubmitSm(
            sequence=2,
            source_addr_ton=5,
            source_addr="8079",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="84912345678",
            registered_delivery=1,
            short_message=b"Cap lai mat kha",
            tlvs=(Tlv(tag=0x0204, value=b"\x00\x2a"),),
        ),
    ),
    (
        "submit_sm_resp",
        h("00000019 80000004 00000000 00000002", "3164333035623463 00"),
        SubmitSmResp(sequence=2, message_id="1d305b4c"),
    ),
    (
        "submit_sm_resp throttled, no body",
        h("00000010 80000004 00000058 00000002"),
        SubmitSmResp(sequence=2, command_status=CommandStatus.ESME_RTHROTTLED),
    ),
    (
        "deliver_sm receipt",
        h(
            "000000ad 00000005 00000000 0000002a",
            "00 01 01 383439313233343536373800 00 00 3830373900",
            "04 00 00 00 00 00 00 00 00",  # esm_class 0x04 (receipt)
            "6b",  # sm_length 107
            RECEIPT_TEXT.hex(),
            "001e 0009 3164333035623463 00",  # receipted_message_id
            "0427 0001 02",  # message_state DELIVERED
        ),
        DeliverSm(
            sequence=42,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="84912345678",
            destination_addr="8079",
            esm_class=0x04,
            short_message=RECEIPT_TEXT,
            tlvs=(
                Tlv(tag=0x001E, value=b"1d305b4c\x00"),
                Tlv(tag=0x0427, value=b"\x02"),
            ),
        ),
    ),
    (
        "deliver_sm_resp",
        h("00000011 80000005 00000000 0000002a 00"),
        DeliverSmResp(sequence=42),
    ),
    (
        "deliver_sm_resp temporary app error",
        h("00000011 80000005 00000064 0000002b 00"),
        DeliverSmResp(sequence=43, command_status=CommandStatus.ESME_RX_T_APPN),
    ),
    ("enquire_link", h("00000010 00000015 00000000 00000005"), EnquireLink(sequence=5)),
    (
        "enquire_link_resp",
        h("00000010 80000015 00000000 00000005"),
        EnquireLinkResp(sequence=5),
    ),
    ("unbind", h("00000010 00000006 00000000 00000009"), Unbind(sequence=9)),
    ("unbind_resp", h("00000010 80000006 00000000 00000009"), UnbindResp(sequence=9)),
    (
        "generic_nack",
        h("00000010 80000000 00000003 7fffffff"),
        GenericNack(sequence=0x7FFFFFFF, command_status=CommandStatus.ESME_RINVCMDID),
    ),
]


@pytest.mark.parametrize(("wire", "event"), [f[1:] for f in FIXTURES], ids=[f[0] for f in FIXTURES])
def test_encode_gives_the_spec_bytes(wire: bytes, event: Event) -> None:
    assert encode(event) == wire


@pytest.mark.parametrize(("wire", "event"), [f[1:] for f in FIXTURES], ids=[f[0] for f in FIXTURES])
def test_decode_gives_the_event(wire: bytes, event: Event) -> None:
    assert decode(wire) == event


def test_deliver_sm_with_vendor_and_one_byte_integer_tlvs_keeps_every_tlv() -> None:
    # A 1-byte user_message_reference (the spec says 2) makes smpplib misalign
    # everything after it; we split by the stated length and keep all of them.
    body = h(
        "00 01 01 383439313233343536373800 00 00 3830373900",
        "00 00 00 00 00 00 00 00 00",
        "07 4248204d4b2031",  # sm_length 7, "BH MK 1"
        "0204 0001 07",  # user_message_reference, 1 octet
        "1401 0003 abcdef",  # vendor tag
        "0427 0001 02",  # message_state
    )
    wire = (16 + len(body)).to_bytes(4, "big") + h("00000005 00000000 00000010") + body
    event = decode(wire)
    assert isinstance(event, DeliverSm)
    assert event.short_message == b"BH MK 1"
    assert event.tlvs == (
        Tlv(tag=0x0204, value=b"\x07"),
        Tlv(tag=0x1401, value=b"\xab\xcd\xef"),
        Tlv(tag=0x0427, value=b"\x02"),
    )
    assert encode(event) == wire


def test_bind_password_never_in_repr() -> None:
    bind = Bind(sequence=1, mode=BindMode.TRANSMITTER, system_id="vss", password="hunter2x")
    assert "hunter2x" not in repr(bind)


def test_bind_password_never_in_an_encode_error() -> None:
    bind = Bind(sequence=1, mode=BindMode.TRANSMITTER, system_id="vss", password="toolong123")
    with pytest.raises(LocalProtocolError) as info:
        encode(bind)
    assert "toolong123" not in str(info.value)
    assert "password" in str(info.value)


@pytest.mark.parametrize(
    "event",
    [
        SubmitSm(sequence=1, source_addr="x" * 21),  # max 20 octets + NUL
        SubmitSm(sequence=1, destination_addr="849\x00"),
        SubmitSm(sequence=1, source_addr="Đà Nẵng"),
        SubmitSm(sequence=1, short_message=b"x" * 255),
        SubmitSm(sequence=1, data_coding=256),
        SubmitSm(sequence=1, tlvs=(Tlv(tag=0x10000, value=b""),)),
        SubmitSm(sequence=1, tlvs=(Tlv(tag=0x1400, value=b"x" * 0x10000),)),
        SubmitSm(sequence=2**32),
        SubmitSmResp(sequence=1, message_id="9" * 65),
        GenericNack(sequence=1, command_status=-1),
    ],
)
def test_unencodable_events_are_local_errors(event: Event) -> None:
    with pytest.raises(LocalProtocolError):
        encode(event)


def test_longest_fields_encode() -> None:
    event = SubmitSm(
        sequence=1,
        source_addr="1" * 20,
        destination_addr="2" * 20,
        short_message=b"x" * 254,
    )
    assert decode(encode(event)) == event


def test_non_ascii_address_bytes_round_trip_exactly() -> None:
    body = h(
        "00 00 00 84e900 00 00 3800",  # source_addr has bytes 0x84 0xE9
        "00 00 00 00 00 00 00 00 00 00",
    )
    wire = (16 + len(body)).to_bytes(4, "big") + h("00000005 00000000 00000001") + body
    event = decode(wire)
    assert isinstance(event, DeliverSm)
    assert event.source_addr.encode("ascii", "surrogateescape") == b"\x84\xe9"
    assert encode(event) == wire


# --- decoding leniency on responses and strictness on requests ----------------------


def test_submit_sm_resp_message_id_without_nul_is_accepted() -> None:
    assert decode(h("00000014 80000004 00000000 00000002", "41424344")) == SubmitSmResp(
        sequence=2, message_id="ABCD"
    )


def test_deliver_sm_resp_without_body_is_accepted() -> None:
    assert decode(h("00000010 80000005 00000000 00000002")) == DeliverSmResp(sequence=2)


def test_error_response_with_garbage_body_keeps_its_status() -> None:
    wire = pdu("80000009 0000000d 00000001", "5800 0210 00")  # half a TLV
    assert decode(wire) == BindResp(
        sequence=1, mode=BindMode.TRANSCEIVER, command_status=CommandStatus.ESME_RBINDFAIL
    )


@pytest.mark.parametrize(
    ("name", "wire", "status"),
    [
        (
            "truncated in the mandatory fields",
            h("00000015 00000004 00000000 00000009", "00 01 01 3800"),
            CommandStatus.ESME_RINVMSGLEN,
        ),
        (
            "C-string without NUL",
            h("00000014 00000002 00000000 00000009", "61626364"),
            CommandStatus.ESME_RINVMSGLEN,
        ),
        (
            "sm_length past the end",
            pdu(
                "00000004 00000000 00000009",
                "00 00 00 3100 00 00 3200 00 00 00 00 00 00 00 00",
                "ff 41424344 45464748 494a4b4c",
            ),
            CommandStatus.ESME_RINVMSGLEN,
        ),
        (
            "TLV longer than the body",
            pdu(
                "00000004 00000000 00000009",
                "00 00 00 3100 00 00 3200 00 00 00 00 00 00 00 00 00 00",
                "1401 00ff 414243",
            ),
            CommandStatus.ESME_RINVOPTPARSTREAM,
        ),
        (
            "stray octets after the TLVs",
            pdu(
                "00000004 00000000 00000009",
                "00 00 00 3100 00 00 3200 00 00 00 00 00 00 00 00 00 00",
                "1401 0000 ab",
            ),
            CommandStatus.ESME_RINVOPTPARSTREAM,
        ),
    ],
)
def test_malformed_request_bodies_are_nacked(name: str, wire: bytes, status: int) -> None:
    with pytest.raises(PduRejected) as info:
        decode(wire)
    assert info.value.sequence == 9
    assert info.value.command_status == status
    assert info.value.reply == h("00000010 80000000", f"{status:08x}", "00000009")


def test_unknown_request_is_nacked_with_its_sequence() -> None:
    with pytest.raises(PduRejected) as info:
        decode(h("00000014 00000103 00000000 01020304", "00000000"))  # data_sm
    assert info.value.reply == h("00000010 80000000 00000003 01020304")
    assert info.value.command_status == CommandStatus.ESME_RINVCMDID


def test_unknown_response_is_never_answered() -> None:
    with pytest.raises(PduRejected) as info:
        decode(h("00000010 80000103 00000000 01020304"))
    assert info.value.reply is None
    assert info.value.sequence == 0x01020304


def test_malformed_ok_response_is_rejected_without_reply() -> None:
    wire = pdu("80000009 00000000 00000001", "58 00 0210 00")  # half a TLV
    with pytest.raises(PduRejected) as info:
        decode(wire)
    assert info.value.reply is None


@pytest.mark.parametrize("raw", [b"", b"\x00" * 15, h("00000011 00000015 00000000 00000001")])
def test_decode_wants_exactly_one_pdu(raw: bytes) -> None:
    with pytest.raises(FramingError):
        decode(raw)
