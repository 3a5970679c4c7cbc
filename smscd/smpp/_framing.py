"""Framing: split a byte stream into whole SMPP PDUs.

Theory of operation
-------------------
Every SMPP PDU starts with a 16-byte header whose first four bytes are the
``command_length`` of the whole PDU, header included (big-endian). The reader keeps
one ``bytearray`` of received bytes and, on request, cuts the first complete PDU off
its front.

The length is checked as soon as its four bytes are in, before a single body byte
is waited for (STYLE L6), and falls in one of three ranges:

* ``command_length < 16`` cannot even hold a header, and ``command_length >``
  :data:`MAX_SKIPPED_PDU_SIZE` (1 MiB) is no PDU any SMSC sends (SMPP 3.4's largest
  field, message_payload, holds at most 65,535 octets): the stream is taken as
  desynchronised. Both are a :class:`FramingError`: once a length is wrong
  nothing after it can be located.
* ``max_pdu_size < command_length <= MAX_SKIPPED_PDU_SIZE``: a PDU that is
  plausible but too large to hold (a deliver_sm with a 65,535-octet
  message_payload). It is *skipped*: the reader waits for its 16-byte header,
  keeps that, and discards the body as it arrives -- dropped from the buffer, or
  straight from ``feed()`` once the buffer is empty -- so memory stays bounded
  by one received chunk, never by the PDU. Once the last body byte is gone,
  :meth:`FrameReader.next_frame` hands out a :class:`SkippedPdu` (the header) in
  the PDU's place, for the connection to refuse; the PDU after it is read as
  usual.
* anything else is a PDU, handed out whole once every byte is in.

EOF with a partial PDU in the buffer (or in the middle of a skipped body) is a
FramingError too; EOF at a PDU boundary is a clean close.
"""

from __future__ import annotations

import struct
from typing import Final

import attrs

from smscd.smpp._errors import FramingError
from smscd.smpp._status import CommandStatus

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "MAX_SEQUENCE",
    "MAX_SKIPPED_PDU_SIZE",
    "FrameReader",
    "SkippedPdu",
]

#: command_length, command_id, command_status, sequence_number.
HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size
#: Sequence numbers run 1..0x7FFFFFFF (SMPP 3.4 §3.2).
MAX_SEQUENCE = 0x7FFFFFFF
#: The largest command_length that is skipped rather than taken as a broken stream.
MAX_SKIPPED_PDU_SIZE: Final = 1 << 20
_LENGTH = struct.Struct(">I")


@attrs.frozen(kw_only=True)
class SkippedPdu:
    """The header of a PDU over ``max_pdu_size`` whose body was read and discarded."""

    command_length: int
    command_id: int
    command_status: int
    sequence: int


@attrs.define
class FrameReader:
    """Accumulates bytes and yields complete PDUs, checking every length first."""

    max_pdu_size: int
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _eof: bool = attrs.field(default=False, init=False)
    #: The oversized PDU being skipped, and how many of its body octets are still
    #: to come. While ``_skip_left`` > 0 the buffer is empty.
    _skipped: SkippedPdu | None = attrs.field(default=None, init=False)
    _skip_left: int = attrs.field(default=0, init=False)

    @property
    def eof(self) -> bool:
        """True once ``feed(b"")`` was called."""
        return self._eof

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet handed out as a PDU."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if not data:
            self._eof = True
            return
        if self._skip_left:
            dropped = min(self._skip_left, len(data))
            self._skip_left -= dropped
            if dropped == len(data):
                return
            data = data[dropped:]
        self._buffer += data

    def next_frame(self) -> bytes | SkippedPdu | None:
        """Return the next whole PDU (header and body), the header of a skipped
        one, or None if incomplete.

        Raises FramingError for an impossible length or EOF inside a PDU.
        """
        skipped = self._skipped
        if skipped is not None:
            if self._skip_left:
                if self._eof:
                    raise FramingError(
                        f"connection closed inside a skipped PDU "
                        f"({self._skip_left} octets missing)",
                        command_status=CommandStatus.ESME_RINVCMDLEN,
                    )
                return None
            self._skipped = None
            return skipped
        buffer = self._buffer
        if len(buffer) >= 4:
            (length,) = _LENGTH.unpack_from(buffer)
            if length < HEADER_SIZE:
                raise FramingError(
                    f"command_length {length} is shorter than a PDU header",
                    command_status=CommandStatus.ESME_RINVCMDLEN,
                )
            if length > self.max_pdu_size:
                if length > MAX_SKIPPED_PDU_SIZE:
                    raise FramingError(
                        f"command_length {length} exceeds {MAX_SKIPPED_PDU_SIZE}",
                        command_status=CommandStatus.ESME_RINVCMDLEN,
                    )
                if len(buffer) >= HEADER_SIZE:
                    self._skip(length)
                    return self.next_frame()
            elif len(buffer) >= length:
                frame = bytes(buffer[:length])
                del buffer[:length]
                return frame
        if self._eof and buffer:
            raise FramingError(
                f"connection closed inside a PDU ({len(buffer)} bytes pending)",
                command_status=CommandStatus.ESME_RINVCMDLEN,
            )
        return None

    def _skip(self, length: int) -> None:
        """Start skipping the oversized PDU whose header heads the buffer: drop
        what of it is buffered, count what is still to come."""
        buffer = self._buffer
        _, command_id, status, sequence = HEADER.unpack_from(buffer)
        self._skipped = SkippedPdu(
            command_length=length, command_id=command_id, command_status=status, sequence=sequence
        )
        dropped = min(length, len(buffer))
        del buffer[:dropped]
        self._skip_left = length - dropped
