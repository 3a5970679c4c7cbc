"""Properties of the SMPP core (STYLE S2).

1. decode(encode(e)) == e for every event type.
2. Whatever bytes arrive, a Connection yields events or raises RemoteProtocolError
   -- nothing else -- whether they come in one chunk or one byte at a time, and the
   two ways give the same events. (Invariant after h11's fuzz/afl-server.py.)
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smscd.smpp import (
    Connection,
    DeliverSm,
    Event,
    FramingError,
    NeedData,
    PduRejected,
    Response,
    Role,
    decode,
    encode,
)
from smscd.smpp._edge import EdgeRefusal, check_deliver_sm
from tests.strategies import events, pdu_streams, requests
from tests.unit.smpp_helpers import ConnectionPair

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(events)
def test_decode_inverts_encode(event: Event) -> None:
    assert decode(encode(event)) == event


@SETTINGS
@given(requests)
def test_encoded_length_matches_header(event: Event) -> None:
    wire = encode(event)
    assert int.from_bytes(wire[:4], "big") == len(wire)


def _check_reply(exc: PduRejected) -> None:
    """A reply, when there is one, is a well-formed response to the same sequence."""
    if exc.reply is None:
        return
    answer = decode(exc.reply)
    assert answer.sequence == exc.sequence
    assert isinstance(answer, Response)
    assert answer.command_status == exc.command_status != 0


def _outcomes(conn: Connection, chunks: list[bytes]) -> list[object]:
    """Feed the chunks; record every event and every PduRejected reply.

    Only RemoteProtocolError subclasses may escape next_event(); anything else
    fails the test. Stops at the first FramingError (the connection is dead).
    """
    seen: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except PduRejected as exc:
                _check_reply(exc)
                seen.append(("rejected", exc.sequence, exc.command_status, exc.reply))
                continue
            except FramingError:
                seen.append("framing")
                with_error_again = False
                try:
                    conn.next_event()
                except FramingError:
                    with_error_again = True
                assert with_error_again
                return seen
            if isinstance(event, NeedData):
                break
            seen.append(event)
    return seen


def _connections() -> list[Connection]:
    bound = ConnectionPair()
    bound.bind()
    return [Connection(Role.ESME), Connection(Role.SMSC), bound.esme, bound.smsc]


def _check(data: bytes) -> None:
    for index in range(4):
        whole = _outcomes(_connections()[index], [data])
        bytewise = _outcomes(_connections()[index], [data[i : i + 1] for i in range(len(data))])
        assert whole == bytewise


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(pdu_streams())
def test_damaged_pdu_streams_never_crash(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(st.lists(events, min_size=1, max_size=5))
def test_valid_streams_decode_to_their_events_or_clean_rejections(batch: list[Event]) -> None:
    wire = b"".join(encode(e) for e in batch)
    for conn in _connections():
        seen = _outcomes(conn, [wire, b""])
        # Every PDU comes out as itself (as the ESME's edge normalises it) or as
        # one rejection: framing never slips.
        assert len(seen) == len(batch)
        for got, sent in zip(seen, batch, strict=True):
            assert (
                got == sent
                or got == _edge_view(sent)
                or (isinstance(got, tuple) and got[1] == sent.sequence)
            )


def _edge_view(event: Event) -> Event | None:
    """What an ESME hands out for ``event`` when its edge accepts it."""
    if not isinstance(event, DeliverSm):
        return None
    try:
        return check_deliver_sm(event)
    except EdgeRefusal:
        return None
