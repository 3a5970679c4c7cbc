"""The sans-I/O Connection: framing, session states, sequences, outstanding requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest

from smscd.smpp import (
    MAX_SEQUENCE,
    MAX_SKIPPED_PDU_SIZE,
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    Connection,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Event,
    FramingError,
    GenericNack,
    LocalProtocolError,
    NeedData,
    PduRejected,
    Request,
    Role,
    SessionState,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
    encode,
    response_for,
)
from tests.unit.smpp_helpers import ConnectionPair, drain, feed_bytewise, feed_whole

if TYPE_CHECKING:
    from collections.abc import Callable


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


def bound(mode: BindMode = BindMode.TRANSCEIVER) -> ConnectionPair:
    pair = ConnectionPair()
    pair.bind(mode)
    return pair


MO = DeliverSm(
    sequence=77,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="84912345678",
    destination_addr="8079",
    short_message=b"BH MK 0123456789",
)
MT = SubmitSm(
    sequence=1,
    source_addr="8079",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="84912345678",
    short_message=b"Tin nhan sai cu phap.",
)


# --- every fixture, whole / byte by byte / with trailing data ------------------------


def _esme_awaiting(request: Request) -> Callable[[], Connection]:
    """A bound ESME with ``request`` outstanding (for feeding it the response)."""

    def make() -> Connection:
        pair = bound()
        pair.esme.send(request)
        return pair.esme

    return make


def _fresh(role: Role) -> Callable[[], Connection]:
    return lambda: Connection(role)


def _bound(role: Role) -> Callable[[], Connection]:
    return lambda: bound().conn(role)


def _esme_binding() -> Connection:
    conn = Connection(Role.ESME)
    conn.send(Bind(sequence=1, mode=BindMode.TRANSCEIVER, system_id="a", password="b"))
    return conn


#: (name, connection factory, bytes fed, expected event, state afterwards)
FEEDS: list[tuple[str, Callable[[], Connection], Event, SessionState]] = [
    (
        "SMSC receives bind",
        _fresh(Role.SMSC),
        Bind(sequence=1, mode=BindMode.RECEIVER, system_id="vss", password="pw"),
        SessionState.BINDING,
    ),
    (
        "ESME receives bind_resp",
        _esme_binding,
        BindResp(sequence=1, mode=BindMode.TRANSCEIVER, system_id="SMSC"),
        SessionState.BOUND_TRX,
    ),
    ("SMSC receives submit_sm", _bound(Role.SMSC), MT, SessionState.BOUND_TRX),
    ("ESME receives deliver_sm", _bound(Role.ESME), MO, SessionState.BOUND_TRX),
    (
        "ESME receives submit_sm_resp",
        _esme_awaiting(MT),
        SubmitSmResp(sequence=1, message_id="1d305b4c"),
        SessionState.BOUND_TRX,
    ),
    (
        "SMSC receives deliver_sm_resp",
        lambda: _smsc_awaiting(MO),
        DeliverSmResp(sequence=77),
        SessionState.BOUND_TRX,
    ),
    (
        "ESME receives enquire_link",
        _bound(Role.ESME),
        EnquireLink(sequence=9),
        SessionState.BOUND_TRX,
    ),
    (
        "ESME receives enquire_link_resp",
        _esme_awaiting(EnquireLink(sequence=4)),
        EnquireLinkResp(sequence=4),
        SessionState.BOUND_TRX,
    ),
    ("ESME receives unbind", _bound(Role.ESME), Unbind(sequence=3), SessionState.UNBINDING),
    (
        "ESME receives unbind_resp",
        _esme_awaiting(Unbind(sequence=5)),
        UnbindResp(sequence=5),
        SessionState.CLOSED,
    ),
    (
        "ESME receives generic_nack for its submit_sm",
        _esme_awaiting(MT),
        GenericNack(sequence=1, command_status=CommandStatus.ESME_RINVCMDLEN),
        SessionState.BOUND_TRX,
    ),
]


def _smsc_awaiting(request: Request) -> Connection:
    pair = bound()
    pair.smsc.send(request)
    return pair.smsc


_IDS = [f[0] for f in FEEDS]
_CASES = [f[1:] for f in FEEDS]


@pytest.mark.parametrize(("make", "event", "state"), _CASES, ids=_IDS)
def test_fed_whole(make: Callable[[], Connection], event: Event, state: SessionState) -> None:
    conn = make()
    assert feed_whole(conn, encode(event)) == [event]
    assert conn.state is state


@pytest.mark.parametrize(("make", "event", "state"), _CASES, ids=_IDS)
def test_fed_one_byte_at_a_time(
    make: Callable[[], Connection], event: Event, state: SessionState
) -> None:
    conn = make()
    wire = encode(event)
    for i, octet in enumerate(wire):
        conn.receive_data(bytes([octet]))
        got = drain(conn)
        assert got == ([event] if i == len(wire) - 1 else [])
    assert conn.state is state


@pytest.mark.parametrize(("make", "event", "state"), _CASES, ids=_IDS)
def test_fed_with_trailing_data(
    make: Callable[[], Connection], event: Event, state: SessionState
) -> None:
    conn = make()
    wire = encode(event)
    trailing = h("00000010 00000015")  # half of an enquire_link header
    assert feed_whole(conn, wire + trailing) == [event]
    assert isinstance(conn.next_event(), NeedData)
    assert conn.state is state


def test_many_pdus_in_one_chunk_come_out_in_order() -> None:
    pair = bound()
    events: list[Event] = [EnquireLink(sequence=10), MO, EnquireLink(sequence=11)]
    wire = b"".join(encode(e) for e in events)
    assert feed_whole(pair.esme, wire) == events
    pair2 = bound()
    assert feed_bytewise(pair2.esme, wire) == events


# --- binding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "state"),
    [
        (BindMode.TRANSMITTER, SessionState.BOUND_TX),
        (BindMode.RECEIVER, SessionState.BOUND_RX),
        (BindMode.TRANSCEIVER, SessionState.BOUND_TRX),
    ],
)
def test_bind_in_both_roles(mode: BindMode, state: SessionState) -> None:
    pair = ConnectionPair()
    assert pair.esme.state is SessionState.OPEN
    assert pair.esme.bind_mode is None
    pair.bind(mode)
    assert pair.esme.state is state
    assert pair.smsc.state is state
    assert pair.esme.outstanding == {}


@pytest.mark.parametrize("status", [CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_RBINDFAIL])
def test_failed_bind_returns_to_open_and_may_retry(status: CommandStatus) -> None:
    pair = ConnectionPair()
    bind = Bind(
        sequence=pair.esme.next_sequence(), mode=BindMode.TRANSMITTER, system_id="a", password="b"
    )
    pair.send(Role.ESME, bind)
    wire = pair.smsc.send(response_for(bind, status))
    assert wire == h("00000010 80000002", f"{status:08x}", "00000001")
    assert pair.smsc.state is SessionState.OPEN
    [resp] = feed_whole(pair.esme, wire)
    assert isinstance(resp, BindResp)
    assert resp.command_status == status
    assert (pair.esme.state, pair.esme.bind_mode) == (SessionState.OPEN, None)
    pair.bind(BindMode.TRANSMITTER)  # a second attempt on the same connection works
    assert pair.esme.state is SessionState.BOUND_TX


def test_generic_nack_to_bind_is_a_failed_bind_on_both_sides() -> None:
    pair = ConnectionPair()
    bind = Bind(sequence=1, mode=BindMode.TRANSCEIVER, system_id="a", password="b")
    pair.send(Role.ESME, bind)
    pair.send(Role.SMSC, GenericNack(sequence=1, command_status=CommandStatus.ESME_RSYSERR))
    assert pair.esme.state is SessionState.OPEN
    assert pair.smsc.state is SessionState.OPEN
    assert pair.esme.outstanding == {}


def test_esme_cannot_bind_twice() -> None:
    pair = bound()
    with pytest.raises(LocalProtocolError):
        pair.esme.send(Bind(sequence=9, mode=BindMode.TRANSMITTER, system_id="a", password="b"))
    assert pair.esme.state is SessionState.BOUND_TRX


def test_smsc_answers_a_second_bind_with_already_bound() -> None:
    pair = bound()
    second = Bind(sequence=9, mode=BindMode.TRANSMITTER, system_id="a", password="b")
    pair.smsc.receive_data(encode(second))
    with pytest.raises(PduRejected) as info:
        pair.smsc.next_event()
    assert info.value.command_status == CommandStatus.ESME_RALYBND
    assert info.value.reply == h("00000010 80000002 00000005 00000009")
    assert pair.smsc.state is SessionState.BOUND_TRX


def test_bind_resp_of_another_mode_is_rejected() -> None:
    conn = _esme_binding()
    conn.receive_data(encode(BindResp(sequence=1, mode=BindMode.RECEIVER)))
    with pytest.raises(PduRejected) as info:
        conn.next_event()
    assert info.value.reply is None
    assert conn.state is SessionState.BINDING


# --- what each state allows -------------------------------------------------------------


def test_smsc_rejects_submit_sm_before_bind_and_keeps_working() -> None:
    smsc = Connection(Role.SMSC)
    smsc.receive_data(encode(MT) + encode(EnquireLink(sequence=2)))
    with pytest.raises(PduRejected) as info:
        smsc.next_event()
    assert info.value.sequence == 1
    assert info.value.command_status == CommandStatus.ESME_RINVBNDSTS
    assert info.value.reply == h("00000010 80000004 00000004 00000001")  # submit_sm_resp
    assert smsc.next_event() == EnquireLink(sequence=2)
    assert smsc.state is SessionState.OPEN


def test_esme_may_not_submit_while_bound_as_receiver() -> None:
    pair = bound(BindMode.RECEIVER)
    with pytest.raises(LocalProtocolError):
        pair.esme.send(MT)
    assert pair.esme.outstanding == {}
    assert pair.esme.state is SessionState.BOUND_RX


def test_smsc_rejects_submit_sm_from_a_receiver() -> None:
    pair = bound(BindMode.RECEIVER)
    pair.smsc.receive_data(encode(MT))
    with pytest.raises(PduRejected) as info:
        pair.smsc.next_event()
    assert info.value.reply == h("00000010 80000004 00000004 00000001")


def test_esme_rejects_deliver_sm_while_transmitter() -> None:
    pair = bound(BindMode.TRANSMITTER)
    pair.esme.receive_data(encode(MO))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.command_status == CommandStatus.ESME_RINVBNDSTS
    assert info.value.reply == h("00000011 80000005 00000004 0000004d 00")


def test_smsc_may_not_deliver_to_a_transmitter() -> None:
    pair = bound(BindMode.TRANSMITTER)
    with pytest.raises(LocalProtocolError):
        pair.smsc.send(MO)


def test_a_pdu_of_the_wrong_direction_is_an_invalid_command() -> None:
    pair = bound()
    pair.esme.receive_data(encode(MT))  # the SMSC never sends submit_sm
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.command_status == CommandStatus.ESME_RINVCMDID
    with pytest.raises(LocalProtocolError):
        pair.smsc.send(MT)
    with pytest.raises(LocalProtocolError):
        pair.esme.send(MO)


def test_enquire_link_is_allowed_before_bind() -> None:
    pair = ConnectionPair()
    pair.send(Role.ESME, EnquireLink(sequence=1))
    pair.send(Role.SMSC, EnquireLinkResp(sequence=1))
    assert pair.esme.state is SessionState.OPEN


def test_message_exchange_when_bound() -> None:
    pair = bound()
    pair.send(Role.ESME, MT)
    assert set(pair.esme.outstanding) == {1}
    pair.send(Role.SMSC, SubmitSmResp(sequence=1, message_id="abc"))
    assert pair.esme.outstanding == {}
    pair.send(Role.SMSC, MO)
    assert set(pair.smsc.outstanding) == {77}
    pair.send(Role.ESME, response_for(MO))
    assert pair.smsc.outstanding == {}


# --- unbinding ----------------------------------------------------------------------------


@pytest.mark.parametrize("initiator", [Role.ESME, Role.SMSC])
def test_unbind_from_either_side(initiator: Role) -> None:
    pair = bound()
    unbind = Unbind(sequence=pair.conn(initiator).next_sequence())
    pair.send(initiator, unbind)
    assert (pair.esme.state, pair.smsc.state) == (SessionState.UNBINDING,) * 2
    with pytest.raises(LocalProtocolError):
        pair.esme.send(MT)  # no new messages while unbinding
    pair.send(pair.peer(initiator).role, response_for(unbind))
    assert pair.esme.state is SessionState.CLOSED
    assert pair.smsc.state is SessionState.CLOSED


def test_late_responses_drain_while_unbinding() -> None:
    pair = bound()
    pair.send(Role.ESME, MT)
    pair.send(Role.ESME, Unbind(sequence=2))
    pair.send(Role.SMSC, SubmitSmResp(sequence=1, message_id="x"))
    pair.send(Role.SMSC, MO)  # crossed our unbind on the wire
    pair.send(Role.ESME, response_for(MO))
    pair.send(Role.SMSC, UnbindResp(sequence=2))
    assert pair.esme.state is SessionState.CLOSED
    assert pair.esme.outstanding == {}


def test_crossed_unbinds() -> None:
    pair = bound()
    esme_unbind = pair.esme.send(Unbind(sequence=1))
    smsc_unbind = pair.smsc.send(Unbind(sequence=1))
    assert feed_whole(pair.smsc, esme_unbind) == [Unbind(sequence=1)]
    assert feed_whole(pair.esme, smsc_unbind) == [Unbind(sequence=1)]
    pair.send(Role.ESME, UnbindResp(sequence=1))
    pair.send(Role.SMSC, UnbindResp(sequence=1))
    assert pair.esme.state is SessionState.CLOSED
    assert pair.smsc.state is SessionState.CLOSED


def test_requests_after_close_are_rejected() -> None:
    pair = bound()
    pair.send(Role.ESME, Unbind(sequence=1))
    pair.send(Role.SMSC, UnbindResp(sequence=1))
    pair.esme.receive_data(encode(MO))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.reply == h("00000011 80000005 00000004 0000004d 00")


# --- bad input from the peer -------------------------------------------------------------


def test_unknown_command_id_gets_generic_nack_and_connection_survives() -> None:
    pair = bound()
    pair.esme.receive_data(h("00000010 00000222 00000000 12345678") + encode(MO))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.sequence == 0x12345678
    assert info.value.command_status == CommandStatus.ESME_RINVCMDID
    assert info.value.reply == h("00000010 80000000 00000003 12345678")
    assert pair.esme.next_event() == MO
    assert pair.esme.state is SessionState.BOUND_TRX


def test_truncated_body_gets_generic_nack_and_connection_survives() -> None:
    pair = bound()
    truncated = h("00000014 00000005 00000000 00000021", "00 01 01 38")  # no NUL, no rest
    pair.esme.receive_data(truncated + encode(EnquireLink(sequence=34)))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.command_status == CommandStatus.ESME_RINVMSGLEN
    assert info.value.reply == h("00000010 80000000 00000001 00000021")
    assert pair.esme.next_event() == EnquireLink(sequence=34)
    pair.send(Role.SMSC, MO)


@pytest.mark.parametrize("length", [0, 15, MAX_SKIPPED_PDU_SIZE + 1, 0xFFFFFFFF])
def test_bad_command_length_is_fatal_from_the_header_alone(length: int) -> None:
    conn = bound().esme
    conn.receive_data(length.to_bytes(4, "big") + h("00000005 00000000 00000001"))  # 16 bytes
    with pytest.raises(FramingError) as info:
        conn.next_event()
    assert info.value.command_status == CommandStatus.ESME_RINVCMDLEN
    assert conn.state is SessionState.ERROR
    with pytest.raises(FramingError):
        conn.next_event()  # and again
    with pytest.raises(LocalProtocolError):
        conn.send(EnquireLink(sequence=50))


def test_command_length_checked_against_max_pdu_size() -> None:
    conn = Connection(Role.SMSC, max_pdu_size=64)
    conn.receive_data(encode(EnquireLink(sequence=1)))
    assert conn.next_event() == EnquireLink(sequence=1)
    # 65 > 64: the header is read, the body discarded, the PDU refused.
    conn.receive_data(h("00000041 00000015 00000000 00000002") + bytes(49))
    with pytest.raises(PduRejected) as info:
        conn.next_event()
    assert info.value.reply == h("00000010 80000000 00000002 00000002")
    conn.receive_data(encode(EnquireLink(sequence=3)))
    assert conn.next_event() == EnquireLink(sequence=3)


def test_exactly_max_pdu_size_is_accepted() -> None:
    big = DeliverSm(
        sequence=5,
        source_addr="84912345678",
        destination_addr="8079",
        tlvs=(Tlv(tag=0x0424, value=b"x" * 100),),
    )
    wire = encode(big)
    pair = ConnectionPair(max_pdu_size=len(wire))
    pair.bind()
    assert feed_whole(pair.esme, wire) == [big]
    bigger = encode(attrs.evolve(big, sequence=6, tlvs=(Tlv(tag=0x0424, value=b"x" * 101),)))
    pair.esme.receive_data(bigger)
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.reply == h("00000011 80000005 00000001 00000006 00")  # deliver_sm_resp
    assert pair.esme.state is SessionState.BOUND_TRX


def test_eof_inside_a_pdu_is_a_framing_error() -> None:
    conn = bound().esme
    conn.receive_data(encode(MO)[:20])
    assert isinstance(conn.next_event(), NeedData)
    conn.receive_data(b"")
    with pytest.raises(FramingError):
        conn.next_event()
    assert conn.state is SessionState.ERROR


def test_clean_eof_closes() -> None:
    conn = bound().esme
    conn.receive_data(encode(MO))
    conn.receive_data(b"")
    assert conn.next_event() == MO  # what arrived before EOF is still delivered
    assert isinstance(conn.next_event(), NeedData)
    assert conn.state is SessionState.CLOSED
    assert isinstance(conn.next_event(), NeedData)
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


def test_response_to_unknown_sequence_is_rejected_without_reply() -> None:
    pair = bound()
    pair.esme.receive_data(encode(SubmitSmResp(sequence=99, message_id="x")))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.reply is None
    assert info.value.sequence == 99
    pair.send(Role.SMSC, MO)  # still usable


def test_response_of_the_wrong_type_is_rejected_and_request_kept() -> None:
    pair = bound()
    pair.esme.send(EnquireLink(sequence=1))
    pair.esme.receive_data(encode(SubmitSmResp(sequence=1, message_id="x")))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.reply is None
    assert set(pair.esme.outstanding) == {1}


# --- sequences, deadlines, loss --------------------------------------------------------


def test_sequences_start_at_one_and_are_per_connection() -> None:
    a, b = Connection(Role.ESME), Connection(Role.ESME)
    assert [a.next_sequence() for _ in range(3)] == [1, 2, 3]
    assert b.next_sequence() == 1


def test_sequence_wraps_after_0x7fffffff_and_skips_outstanding() -> None:
    conn = Connection(Role.ESME, initial_sequence=MAX_SEQUENCE - 1)
    conn.send(EnquireLink(sequence=1))  # still outstanding when we wrap
    assert conn.next_sequence() == 0x7FFFFFFE
    assert conn.next_sequence() == 0x7FFFFFFF
    assert conn.next_sequence() == 2  # 1 is outstanding
    assert conn.next_sequence() == 3


def test_request_sequence_must_be_in_range_and_unique() -> None:
    conn = Connection(Role.ESME)
    for bad in (0, MAX_SEQUENCE + 1):
        with pytest.raises(LocalProtocolError):
            conn.send(EnquireLink(sequence=bad))
    conn.send(EnquireLink(sequence=5))
    with pytest.raises(LocalProtocolError):
        conn.send(EnquireLink(sequence=5))


def test_expired_requests() -> None:
    pair = ConnectionPair(response_timeout=10.0)
    pair.bind()
    first = SubmitSm(sequence=pair.esme.next_sequence(), destination_addr="1")
    second = SubmitSm(sequence=pair.esme.next_sequence(), destination_addr="2")
    pair.esme.send(first, now=100.0)
    pair.esme.send(second, now=105.0)
    assert pair.esme.next_deadline() == 110.0
    assert pair.esme.expired_requests(109.9) == []
    assert pair.esme.expired_requests(110.0) == [first]
    assert list(pair.esme.outstanding.values()) == [second]
    assert pair.esme.expired_requests(200.0) == [second]
    assert pair.esme.next_deadline() is None
    # The late answer now matches nothing: rejected, never answered.
    pair.esme.receive_data(encode(SubmitSmResp(sequence=first.sequence, message_id="x")))
    with pytest.raises(PduRejected) as info:
        pair.esme.next_event()
    assert info.value.reply is None


def test_fail_outstanding_returns_everything_in_flight() -> None:
    pair = bound()
    sent = [SubmitSm(sequence=pair.esme.next_sequence()) for _ in range(3)]
    for event in sent:
        pair.esme.send(event)
    assert pair.esme.fail_outstanding() == sent
    assert pair.esme.outstanding == {}
    assert pair.esme.fail_outstanding() == []
    assert pair.esme.next_sequence() == 5  # sequences keep going up


def test_outstanding_is_read_only() -> None:
    pair = bound()
    pair.esme.send(MT)
    view = pair.esme.outstanding
    with pytest.raises(TypeError):
        view[2] = MT  # type: ignore[index]
    assert view[1] == MT


def test_send_failed_makes_the_connection_unusable() -> None:
    pair = bound()
    pair.esme.send(MT)
    pair.esme.send_failed()
    assert pair.esme.state is SessionState.ERROR
    with pytest.raises(LocalProtocolError):
        pair.esme.send(EnquireLink(sequence=9))
    with pytest.raises(LocalProtocolError):
        pair.esme.next_event()
    assert pair.esme.fail_outstanding() == [MT]


def test_send_refuses_oversized_pdus() -> None:
    conn = Connection(Role.ESME, max_pdu_size=32)
    with pytest.raises(LocalProtocolError):
        conn.send(Bind(sequence=1, mode=BindMode.TRANSMITTER, system_id="x" * 15, password="y" * 8))
    assert conn.state is SessionState.OPEN
    assert conn.outstanding == {}


# --- response_for ------------------------------------------------------------------------


def test_response_for_every_request() -> None:
    bind = Bind(sequence=3, mode=BindMode.RECEIVER, system_id="a", password="b")
    assert response_for(bind, system_id="S") == BindResp(
        sequence=3, mode=BindMode.RECEIVER, system_id="S"
    )
    assert response_for(Unbind(sequence=4)) == UnbindResp(sequence=4)
    assert response_for(EnquireLink(sequence=5)) == EnquireLinkResp(sequence=5)
    assert response_for(MT, message_id="m1") == SubmitSmResp(sequence=1, message_id="m1")
    assert response_for(MO, CommandStatus.ESME_RX_T_APPN) == DeliverSmResp(
        sequence=77, command_status=0x64
    )


def test_repr_shows_no_secret() -> None:
    pair = ConnectionPair()
    pair.esme.send(Bind(sequence=1, mode=BindMode.TRANSMITTER, system_id="a", password="pw9876"))
    assert "pw9876" not in repr(pair.esme)
    assert "pw9876" not in repr(dict(pair.esme.outstanding))
