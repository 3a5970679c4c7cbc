"""The exceptions of the SMPP core.

Theory of operation
-------------------
The *type* of an exception says what the caller must do (STYLE E3):

* :class:`LocalProtocolError` -- we misused the API (sent a submit_sm while not
  bound, a field too long for the wire, a duplicate sequence...). A bug in the
  caller; the connection's state is unchanged.
* :class:`RemoteProtocolError` -- the peer misbehaved. Never raised directly, only
  as one of its two subclasses:

  - :class:`PduRejected` -- one PDU is bad but the framing is intact, so the bind
    survives: answer with :attr:`PduRejected.reply` (a ready-to-send
    ``generic_nack`` or the fitting ``*_resp``; ``None`` when the bad PDU was itself
    a response, which is never answered) and carry on reading.
  - :class:`FramingError` -- the byte stream can no longer be split into PDUs
    (command_length < 16 or over the framing's hard limit, EOF inside a PDU). The
    connection enters ``ERROR`` and every later ``next_event()`` raises again:
    drop the bind. A PDU merely over ``max_pdu_size`` is skipped and refused
    with a PduRejected instead.

This refines STYLE E2 ("after any error the core enters ERROR") on purpose: an SMSC
that sends one PDU we cannot decode (a vendor command, a broken optional
parameter) must not cost the whole bind and every message in flight with it,
because SMPP frames are length-prefixed and the next PDU is still readable. Only a
framing error poisons the connection.

Every exception carries a ``command_status`` hint (STYLE E1). Messages never
contain a bind password or a message body.
"""

from __future__ import annotations

from smscd.smpp._status import CommandStatus

__all__ = [
    "FramingError",
    "LocalProtocolError",
    "PduRejected",
    "RemoteProtocolError",
    "SmppError",
]


class SmppError(Exception):
    """Base of every error raised by ``smscd.smpp``."""

    def __init__(self, msg: str, *, command_status: int = CommandStatus.ESME_RSYSERR) -> None:
        super().__init__(msg)
        #: The status to put in an answer to the PDU that caused this, if any.
        self.command_status = int(command_status)


class LocalProtocolError(SmppError):
    """We asked the core to do something SMPP forbids (a bug on our side)."""


class RemoteProtocolError(SmppError):
    """The peer sent something SMPP forbids. Raised as one of the two subclasses."""


class PduRejected(RemoteProtocolError):
    """One PDU could not be accepted; the connection stays usable.

    Send :attr:`reply` (when not ``None``) and keep reading.
    """

    def __init__(
        self,
        msg: str,
        *,
        sequence: int,
        command_status: int,
        reply: bytes | None,
    ) -> None:
        super().__init__(msg, command_status=command_status)
        #: The sequence_number of the rejected PDU (as read from its header).
        self.sequence = sequence
        #: Ready-to-send bytes answering the rejected PDU, or None for a response.
        self.reply = reply


class FramingError(RemoteProtocolError):
    """The byte stream is broken: the connection is in ``ERROR``, drop the bind."""
