"""Sans-I/O helpers for the SMPP core tests: an ESME and an SMSC wired back to back.

After h11's ``tests/helpers.py`` ``ConnectionPair``: no sockets, no trio; bytes
returned by one side's ``send()`` are fed straight into the other side.
"""

from __future__ import annotations

from smscd.smpp import (
    Bind,
    BindMode,
    Connection,
    Event,
    NeedData,
    Role,
    SessionState,
    response_for,
)

__all__ = ["ConnectionPair", "drain", "feed_bytewise", "feed_whole"]

SYSTEM_ID = "vss8079"
PASSWORD = "s3cr3t"


def drain(conn: Connection) -> list[Event]:
    """Every event the connection can produce from what it has buffered."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            return events
        events.append(event)


def feed_whole(conn: Connection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return drain(conn)


def feed_bytewise(conn: Connection, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        events.extend(drain(conn))
    return events


class ConnectionPair:
    """An ESME Connection and an SMSC Connection talking to each other."""

    def __init__(self, *, max_pdu_size: int = 65536, response_timeout: float = 10.0) -> None:
        self.esme = Connection(
            Role.ESME, max_pdu_size=max_pdu_size, response_timeout=response_timeout
        )
        self.smsc = Connection(
            Role.SMSC, max_pdu_size=max_pdu_size, response_timeout=response_timeout
        )

    def conn(self, role: Role) -> Connection:
        return self.esme if role is Role.ESME else self.smsc

    def peer(self, role: Role) -> Connection:
        return self.smsc if role is Role.ESME else self.esme

    def send(self, role: Role, event: Event, *, now: float = 0.0) -> list[Event]:
        """``role`` sends ``event``; return what the other side decodes from it.

        Asserts the other side sees exactly the event sent.
        """
        data = self.conn(role).send(event, now=now)
        received = feed_whole(self.peer(role), data)
        assert received == [event]
        return received

    def bind(self, mode: BindMode = BindMode.TRANSCEIVER) -> None:
        """Run a successful bind of ``mode``; both sides end bound."""
        bind = Bind(
            sequence=self.esme.next_sequence(),
            mode=mode,
            system_id=SYSTEM_ID,
            password=PASSWORD,
        )
        self.send(Role.ESME, bind)
        assert self.esme.state is SessionState.BINDING
        assert self.smsc.state is SessionState.BINDING
        self.send(Role.SMSC, response_for(bind, system_id="SIMSMSC"))
        assert self.esme.state is self.smsc.state
        assert self.esme.bind_mode is mode
        assert self.smsc.bind_mode is mode
