"""The ESME's edge: every SMSC field the daemon uses is checked once, in the core.

Each PDU that once crashed the daemon downstream of the core gets exactly the
right answer here (or comes out normalised), whole, byte by byte and with
trailing data, and the connection goes on reading: the next valid deliver_sm
decodes. PDUs over max_pdu_size are skipped without being held.
"""

from __future__ import annotations

from typing import Final

import pytest

from smscd.smpp import (
    MAX_MESSAGE_OCTETS,
    MAX_SKIPPED_PDU_SIZE,
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    Connection,
    DeliverSm,
    Event,
    FramingError,
    NeedData,
    PduRejected,
    Role,
    SessionState,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    decode_short_message,
    encode,
    message_id_keys,
    parse_receipt,
)
from smscd.smpp._framing import FrameReader, SkippedPdu
from tests.fuzz.mutate import HOSTILE_PDUS, deliver_sm, pdu, tlv
from tests.unit.smpp_helpers import ConnectionPair

HOSTILE: Final = dict(HOSTILE_PDUS)

#: The valid deliver_sm sent after each hostile PDU.
NEXT_MO: Final = DeliverSm(
    sequence=0x55,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="84912345678",
    destination_addr="8079",
    short_message=b"BH MK 0123456789",
)


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


def bound_esme(mode: BindMode = BindMode.TRANSCEIVER) -> Connection:
    """A bound ESME with submit_sm 2 and 3 outstanding (for the submit_sm_resp cases)."""
    pair = ConnectionPair()
    pair.bind(mode)
    if mode is not BindMode.RECEIVER:
        for seq in (2, 3):
            pair.esme.send(SubmitSm(sequence=seq, destination_addr="84912345678"))
    return pair.esme


Outcome = Event | tuple[str, int, bytes | None]


def outcomes(conn: Connection, chunks: list[bytes]) -> list[Outcome]:
    """Every event, and every rejection as ("rejected", status, reply)."""
    seen: list[Outcome] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except PduRejected as exc:
                seen.append(("rejected", exc.command_status, exc.reply))
                continue
            if isinstance(event, NeedData):
                break
            seen.append(event)
    return seen


def deliver_sm_resp(sequence: int, status: int) -> bytes:
    return h("00000011 80000005", f"{status:08x}", f"{sequence:08x}", "00")


# --- the PDUs that crashed the daemon: refused with the right deliver_sm_resp --------------

REFUSED: Final = [
    ("deliver_sm_source_addr_25_octets", 0x101, CommandStatus.ESME_RINVSRCADR),
    ("deliver_sm_source_addr_non_ascii", 0x102, CommandStatus.ESME_RINVSRCADR),
    ("deliver_sm_source_addr_empty", 0x103, CommandStatus.ESME_RINVSRCADR),
    ("deliver_sm_destination_addr_21_octets", 0x104, CommandStatus.ESME_RINVDSTADR),
    ("receipt_text_id_5000_digits", 0x105, CommandStatus.ESME_RINVMSGLEN),
    ("deliver_sm_message_payload_2001_octets", 0x10B, CommandStatus.ESME_RINVMSGLEN),
    # 65,587 octets > max_pdu_size 65,536: skipped by the framing, never held.
    ("deliver_sm_message_payload_65535_octets", 0x10A, CommandStatus.ESME_RINVMSGLEN),
]


def _feeds(wire: bytes) -> dict[str, list[bytes]]:
    trailing = h("00000010 00000015")  # half of an enquire_link header
    return {
        "whole": [wire + encode(NEXT_MO)],
        "byte by byte": [wire[i : i + 1] for i in range(len(wire))] + [encode(NEXT_MO)],
        "with trailing data": [wire + encode(NEXT_MO) + trailing],
    }


@pytest.mark.parametrize("how", ["whole", "byte by byte", "with trailing data"])
@pytest.mark.parametrize(("name", "sequence", "status"), REFUSED, ids=[r[0] for r in REFUSED])
def test_hostile_deliver_sm_is_refused_and_the_bind_goes_on(
    name: str, sequence: int, status: CommandStatus, how: str
) -> None:
    conn = bound_esme()
    seen = outcomes(conn, _feeds(HOSTILE[name])[how])
    assert seen == [("rejected", status, deliver_sm_resp(sequence, status)), NEXT_MO]
    assert conn.state is SessionState.BOUND_TRX
    assert isinstance(conn.next_event(), NeedData)


def test_a_refusal_names_no_phone_number() -> None:
    conn = bound_esme()
    conn.receive_data(HOSTILE["deliver_sm_source_addr_non_ascii"])
    with pytest.raises(PduRejected) as info:
        conn.next_event()
    assert "84912" not in str(info.value)
    assert "source_addr" in str(info.value)


def test_non_ascii_source_addr_spelled_out() -> None:
    """The PDU of the bug report, octet by octet: source_addr "8491\\xe9"."""
    wire = h(
        "0000002f 00000005 00000000 00000042",
        "00 01 01 38343931e9 00 00 00 38303739 00",  # service_type, source, destination
        "00 00 00 00 00 00 00 00 00 05 42484d4b20",  # ... sm_length 5, "BHMK "
    )
    conn = bound_esme()
    assert outcomes(conn, [wire]) == [
        ("rejected", 0x0A, h("00000011 80000005 0000000a 00000042 00"))
    ]


# --- accepted, and made safe ---------------------------------------------------------------


def _one_event(name: str, how: str) -> Event:
    conn = bound_esme()
    seen = outcomes(conn, _feeds(HOSTILE[name])[how])
    assert len(seen) == 2
    assert seen[1] == NEXT_MO  # still reading
    event = seen[0]
    assert not isinstance(event, tuple)
    return event


HOWS: Final = ["whole", "byte by byte", "with trailing data"]


@pytest.mark.parametrize("how", HOWS)
def test_receipt_with_a_5000_digit_tlv_id_keeps_64(how: str) -> None:
    event = _one_event("receipt_tlv_id_5000_digits", how)
    assert isinstance(event, DeliverSm)
    receipt = parse_receipt(event)
    assert (receipt.message_id, receipt.stat) == ("7" * 64, "DELIVRD")
    assert message_id_keys(receipt.message_id) == {"7" * 64}


@pytest.mark.parametrize("how", HOWS)
def test_receipt_with_an_1800_digit_text_id_keeps_64(how: str) -> None:
    event = _one_event("receipt_text_id_1800_digits", how)
    assert isinstance(event, DeliverSm)
    receipt = parse_receipt(event)
    assert receipt.message_id == "9" * 64
    assert message_id_keys(receipt.message_id) == {"9" * 64}


@pytest.mark.parametrize("how", HOWS)
def test_receipt_with_a_non_ascii_id_escapes_it(how: str) -> None:
    event = _one_event("receipt_text_id_non_ascii", how)
    assert isinstance(event, DeliverSm)
    assert parse_receipt(event).message_id == "12\\xe934"


def test_receipt_stat_and_err_are_cut_to_their_columns() -> None:
    event = _one_event("receipt_stat_and_err_300_octets", "whole")
    assert isinstance(event, DeliverSm)
    receipt = parse_receipt(event)
    assert (receipt.message_id, receipt.stat, receipt.err) == ("42", "D" * 16, "0" * 16)


@pytest.mark.parametrize("how", HOWS)
def test_submit_sm_resp_with_a_5000_digit_id_keeps_64(how: str) -> None:
    event = _one_event("submit_sm_resp_id_5000_digits", how)
    assert event == SubmitSmResp(sequence=2, message_id="1" * 64)
    assert message_id_keys("1" * 64) == {"1" * 64}


@pytest.mark.parametrize("how", HOWS)
def test_submit_sm_resp_with_a_non_ascii_id_escapes_it(how: str) -> None:
    event = _one_event("submit_sm_resp_id_non_ascii", how)
    assert event == SubmitSmResp(sequence=3, message_id="1d30\\xe95b4c")


@pytest.mark.parametrize(
    ("name", "data_coding", "text"),
    [
        ("deliver_sm_ucs2_lone_surrogate_and_nul", 0x08, "\ufffd\ufffdB"),
        ("deliver_sm_latin1_nul", 0x03, "BH\ufffdMK"),
    ],
)
def test_undecodable_text_is_accepted_as_storable_text(
    name: str, data_coding: int, text: str
) -> None:
    event = _one_event(name, "whole")
    assert isinstance(event, DeliverSm)
    decoded = decode_short_message(data_coding, event.short_message)
    assert decoded == text
    decoded.encode("utf-8")  # what the store does; a lone surrogate would raise


def test_other_c_strings_are_normalised_not_refused() -> None:
    event = _one_event("deliver_sm_service_type_and_times_non_ascii", "whole")
    assert isinstance(event, DeliverSm)
    assert (event.service_type, event.schedule_delivery_time, event.validity_period) == (
        "?????",
        "?" * 16,
        "?",
    )
    assert (event.source_addr, event.short_message) == ("84912345678", b"BH MK 0123456789")
    assert encode(event)  # the normalised event is within every SMPP limit again


# --- the limits, at their boundaries --------------------------------------------------------


def _fed(wire: bytes) -> list[Outcome]:
    return outcomes(bound_esme(), [wire])


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        (b"8" * 20, True),
        (b"8" * 21, False),
        (b" ~", True),  # 0x20 and 0x7E: printable ASCII
        (b"849\x7f", False),
        (b"849\x1f", False),
        (b"+84912345678", True),
        (b"", False),
    ],
)
def test_mo_source_addr_limits(source: bytes, ok: bool) -> None:
    seen = _fed(deliver_sm(sequence=9, source_addr=source, short_message=b"BH MK"))
    if ok:
        [event] = seen
        assert isinstance(event, DeliverSm)
        assert event.source_addr == source.decode("ascii")
    else:
        assert seen == [("rejected", 0x0A, deliver_sm_resp(9, 0x0A))]


@pytest.mark.parametrize(
    ("destination", "ok"),
    [(b"", True), (b"8" * 20, True), (b"8" * 21, False), (b"80\xe979", False)],
)
def test_mo_destination_addr_limits(destination: bytes, ok: bool) -> None:
    seen = _fed(deliver_sm(sequence=9, destination_addr=destination, short_message=b"BH MK"))
    if ok:
        assert [type(e) for e in seen] == [DeliverSm]
    else:
        assert seen == [("rejected", 0x0B, deliver_sm_resp(9, 0x0B))]


@pytest.mark.parametrize(
    ("size", "ok"), [(MAX_MESSAGE_OCTETS, True), (MAX_MESSAGE_OCTETS + 1, False)]
)
@pytest.mark.parametrize("esm_class", [0x00, 0x04])
def test_message_length_limit_for_mo_and_receipt(size: int, ok: bool, esm_class: int) -> None:
    assert MAX_MESSAGE_OCTETS == 2000
    payload = tlv(0x0424, b"id:1 stat:DELIVRD ".ljust(size, b"x"))
    seen = _fed(deliver_sm(sequence=9, esm_class=esm_class, tlvs=payload))
    if ok:
        assert [type(e) for e in seen] == [DeliverSm]
    else:
        assert seen == [("rejected", 0x01, deliver_sm_resp(9, 0x01))]


def test_a_receipt_s_odd_addresses_are_normalised_not_refused() -> None:
    """A receipt is neither stored by its addresses nor answered: lenient."""
    wire = deliver_sm(
        sequence=9,
        esm_class=0x04,
        source_addr=b"",
        destination_addr=b"80\xe97" + b"9" * 30,
        short_message=b"id:42 stat:DELIVRD",
    )
    [event] = _fed(wire)
    assert isinstance(event, DeliverSm)
    assert (event.source_addr, event.destination_addr) == ("", "80?7" + "9" * 16)
    assert parse_receipt(event).message_id == "42"


def test_the_session_state_is_checked_before_the_fields() -> None:
    conn = bound_esme(BindMode.TRANSMITTER)
    seen = outcomes(conn, [HOSTILE["deliver_sm_source_addr_empty"]])
    assert seen == [("rejected", 0x04, deliver_sm_resp(0x103, 0x04))]  # ESME_RINVBNDSTS


def test_bind_resp_system_id_is_normalised() -> None:
    conn = Connection(Role.ESME)
    conn.send(Bind(sequence=1, mode=BindMode.TRANSCEIVER, system_id="vss", password="pw"))
    seen = outcomes(conn, [pdu(0x80000009, b"SM\xe9SC" + b"X" * 20 + b"\0", sequence=1)])
    assert seen == [BindResp(sequence=1, mode=BindMode.TRANSCEIVER, system_id="SM?SC" + "X" * 10)]
    assert conn.state is SessionState.BOUND_TRX


def test_the_smsc_role_hands_out_what_it_received() -> None:
    """The edge is the ESME's: an SMSC (the simulator) sees the ESME's bytes as sent."""
    pair = ConnectionPair()
    pair.bind()
    wire = encode(SubmitSm(sequence=2, destination_addr="8" * 20, service_type="\udce9"))
    [event] = outcomes(pair.smsc, [wire])
    assert isinstance(event, SubmitSm)
    assert event.service_type == "\udce9"


# --- PDUs over max_pdu_size: skipped, refused, the bind stays -------------------------------


def test_oversized_request_gets_generic_nack_and_the_next_pdu_is_read() -> None:
    conn = bound_esme()
    big = pdu(0x00000015, b"\0" * 70_000, sequence=0x31)  # an enquire_link of 70 KB
    seen = outcomes(conn, [big + encode(NEXT_MO)])
    assert seen == [("rejected", 0x02, h("00000010 80000000 00000002 00000031")), NEXT_MO]


def test_oversized_response_is_dropped_without_reply() -> None:
    conn = bound_esme()
    big = pdu(0x80000004, b"1" * 70_000 + b"\0", sequence=2)
    seen = outcomes(conn, [big + encode(NEXT_MO)])
    assert seen == [("rejected", 0x02, None), NEXT_MO]
    assert set(conn.outstanding) == {2, 3}  # the submit_sm waits for its timeout


def test_skipping_holds_no_body_in_memory() -> None:
    reader = FrameReader(max_pdu_size=65536)
    header = h("00100000 00000005 00000000 00000077")  # 1 MiB deliver_sm, the hard limit
    assert int.from_bytes(header[:4], "big") == MAX_SKIPPED_PDU_SIZE
    reader.feed(header + b"x" * 1000)
    assert reader.next_frame() is None
    assert reader.buffered == 0
    chunk = b"y" * 4096
    left = MAX_SKIPPED_PDU_SIZE - 16 - 1000
    while left > len(chunk):
        reader.feed(chunk)
        left -= len(chunk)
        assert reader.buffered == 0
        assert reader.next_frame() is None
    reader.feed(b"z" * left + b"next")
    assert reader.next_frame() == SkippedPdu(
        command_length=MAX_SKIPPED_PDU_SIZE, command_id=5, command_status=0, sequence=0x77
    )
    assert reader.buffered == 4  # the PDU after it, kept


def test_eof_inside_a_skipped_body_is_a_framing_error() -> None:
    conn = bound_esme()
    conn.receive_data(pdu(0x00000005, b"\0" * 70_000)[:40_000])
    assert isinstance(conn.next_event(), NeedData)
    conn.receive_data(b"")
    with pytest.raises(FramingError):
        conn.next_event()
    assert conn.state is SessionState.ERROR


def test_eof_right_after_a_skipped_pdu_is_a_clean_close() -> None:
    conn = bound_esme()
    conn.receive_data(pdu(0x00000005, b"\0" * 70_000, sequence=8))
    conn.receive_data(b"")
    with pytest.raises(PduRejected) as info:
        conn.next_event()
    assert info.value.reply == deliver_sm_resp(8, 0x01)
    assert isinstance(conn.next_event(), NeedData)
    assert conn.state is SessionState.CLOSED


def test_message_payload_exactly_filling_max_pdu_size_reaches_the_text_cap() -> None:
    """Under max_pdu_size, a big message_payload is refused by the text cap instead."""
    wire = deliver_sm(sequence=9, tlvs=tlv(0x0424, b"A" * 60_000))
    pair = ConnectionPair(max_pdu_size=len(wire))
    pair.bind()
    assert outcomes(pair.esme, [wire]) == [("rejected", 0x01, deliver_sm_resp(9, 0x01))]


def test_tlv_events_survive_the_edge_unchanged() -> None:
    mo = DeliverSm(
        sequence=3,
        source_addr="84912345678",
        destination_addr="8079",
        tlvs=(Tlv(tag=0x1401, value=b"\xab\xcd"), Tlv(tag=0x0424, value=b"BH MK 0123456789")),
    )
    assert outcomes(bound_esme(), [encode(mo)]) == [mo]
