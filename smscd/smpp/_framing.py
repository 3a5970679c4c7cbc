"""Framing: split a byte stream into whole SMPP PDUs.

Theory of operation
-------------------
Every SMPP PDU starts with a 16-byte header whose first four bytes are the
``command_length`` of the whole PDU, header included (big-endian). The reader keeps
one ``bytearray`` of received bytes and, on request, cuts the first complete PDU off
its front.

The length is checked as soon as its four bytes are in, before a single body byte
is waited for (STYLE L6): ``command_length < 16`` cannot even hold a header, and
``command_length > max_pdu_size`` is refused rather than trusted, so a hostile or
broken peer can never make us reserve or wait for gigabytes. Both are a
:class:`FramingError`: once a length is wrong nothing after it can be located.
EOF with a partial PDU in the buffer is a FramingError too; EOF at a PDU boundary
is a clean close.
"""

from __future__ import annotations

import struct

import attrs

from smscd.smpp._errors import FramingError
from smscd.smpp._status import CommandStatus

__all__ = ["HEADER", "HEADER_SIZE", "MAX_SEQUENCE", "FrameReader"]

#: command_length, command_id, command_status, sequence_number.
HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size
#: Sequence numbers run 1..0x7FFFFFFF (SMPP 3.4 §3.2).
MAX_SEQUENCE = 0x7FFFFFFF
_LENGTH = struct.Struct(">I")


@attrs.define
class FrameReader:
    """Accumulates bytes and yields complete PDUs, checking every length first."""

    max_pdu_size: int
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _eof: bool = attrs.field(default=False, init=False)

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
        else:
            self._buffer += data

    def next_frame(self) -> bytes | None:
        """Return the next whole PDU (header and body), or None if incomplete.

        Raises FramingError for an impossible length or EOF inside a PDU.
        """
        buffer = self._buffer
        if len(buffer) >= 4:
            (length,) = _LENGTH.unpack_from(buffer)
            if length < HEADER_SIZE:
                raise FramingError(
                    f"command_length {length} is shorter than a PDU header",
                    command_status=CommandStatus.ESME_RINVCMDLEN,
                )
            if length > self.max_pdu_size:
                raise FramingError(
                    f"command_length {length} exceeds max_pdu_size {self.max_pdu_size}",
                    command_status=CommandStatus.ESME_RINVCMDLEN,
                )
            if len(buffer) >= length:
                frame = bytes(buffer[:length])
                del buffer[:length]
                return frame
        if self._eof and buffer:
            raise FramingError(
                f"connection closed inside a PDU ({len(buffer)} bytes pending)",
                command_status=CommandStatus.ESME_RINVCMDLEN,
            )
        return None
