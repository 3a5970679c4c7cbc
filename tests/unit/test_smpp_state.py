"""The session state table itself: who may send what, in which state."""

from __future__ import annotations

import pytest

from smscd.smpp import (
    BindMode,
    DeliverSm,
    EnquireLink,
    LocalProtocolError,
    PduRejected,
    Role,
    SessionState,
    SubmitSm,
    Unbind,
    UnbindResp,
    encode,
)
from tests.unit.smpp_helpers import ConnectionPair


def pair_in(state: SessionState) -> ConnectionPair:
    """Both ends in ``state``, reached by a clean exchange."""
    pair = ConnectionPair()
    modes = {
        SessionState.BOUND_TX: BindMode.TRANSMITTER,
        SessionState.BOUND_RX: BindMode.RECEIVER,
        SessionState.BOUND_TRX: BindMode.TRANSCEIVER,
    }
    if state is not SessionState.OPEN:
        pair.bind(modes.get(state, BindMode.TRANSCEIVER))
    if state in (SessionState.UNBINDING, SessionState.CLOSED):
        pair.send(Role.ESME, Unbind(sequence=100))
    if state is SessionState.CLOSED:
        pair.send(Role.SMSC, UnbindResp(sequence=100))
    assert (pair.esme.state, pair.smsc.state) == (state, state)
    return pair


STATES = [
    SessionState.OPEN,
    SessionState.BOUND_TX,
    SessionState.BOUND_RX,
    SessionState.BOUND_TRX,
    SessionState.UNBINDING,
    SessionState.CLOSED,
]
SUBMIT_OK = {SessionState.BOUND_TX, SessionState.BOUND_TRX}
DELIVER_OK = {SessionState.BOUND_RX, SessionState.BOUND_TRX, SessionState.UNBINDING}


@pytest.mark.parametrize("state", STATES)
def test_submit_sm_legality_is_the_same_for_sender_and_receiver(state: SessionState) -> None:
    submit = SubmitSm(sequence=7, destination_addr="84912345678")
    esme = pair_in(state).esme
    smsc = pair_in(state).smsc
    smsc.receive_data(encode(submit))
    if state in SUBMIT_OK:
        esme.send(submit)
        assert smsc.next_event() == submit
    else:
        with pytest.raises(LocalProtocolError):
            esme.send(submit)
        with pytest.raises(PduRejected):
            smsc.next_event()
    assert esme.state is state


@pytest.mark.parametrize("state", STATES)
def test_deliver_sm_legality_is_the_same_for_sender_and_receiver(state: SessionState) -> None:
    deliver = DeliverSm(sequence=7, source_addr="84912345678", short_message=b"BH MK")
    smsc = pair_in(state).smsc
    esme = pair_in(state).esme
    esme.receive_data(encode(deliver))
    ok = state in DELIVER_OK
    if ok:
        smsc.send(deliver)
        assert esme.next_event() == deliver
    else:
        with pytest.raises(LocalProtocolError):
            smsc.send(deliver)
        with pytest.raises(PduRejected):
            esme.next_event()


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("sender", [Role.ESME, Role.SMSC])
def test_enquire_link_allowed_unless_closed(state: SessionState, sender: Role) -> None:
    pair = pair_in(state)
    if state is SessionState.CLOSED:
        with pytest.raises(LocalProtocolError):
            pair.conn(sender).send(EnquireLink(sequence=55))
    else:
        pair.send(sender, EnquireLink(sequence=55))
