"""GSM 03.38, the SMS default alphabet: the one place that decides what is GSM-7
and how it is encoded.

A leaf module: it imports nothing of smscd (and no I/O), so the sans-I/O SMPP
core (``smscd.smpp``: message text on the wire) and the reset pipeline
(``smscd.reset``: the reply templates an operator may set) use this one table.

Theory of operation
-------------------
SMPP carries GSM-7 *unpacked*: one septet per octet (data_coding 0). The basic
table holds 128 characters; ``0x1B`` escapes into the extension table, whose
characters (``{ } [ ] ~ ^ \\ | €`` and form feed) take two septets.

Many characters sit at the same code in GSM 03.38 and in ASCII: letters,
digits, space, LF, CR and most punctuation. A text made only of these is
*ASCII-alike* (:func:`first_not_ascii_alike` is None): its GSM-7 octets are its
ASCII octets, one septet per character, and it reads the same whether an SMSC
takes data_coding 0 as GSM 03.38 or as ASCII (both exist; ``gsm7_default`` is a
per-carrier setting). The printable ASCII characters that are *not* alike are
``@ $ _`` (GSM-7 has them at other codes), ```` ` ```` (GSM-7 lacks it) and the
extension characters ``{ } [ ] ~ ^ \\ |`` (two septets each). The encoder and
decoder take the ASCII-alike case by a fast path and fall back to the tables
for the rest.

Decoding never raises: an octet over 0x7F becomes U+FFFD, an unknown escape
shows the base character (3GPP TS 23.038 §6.2.1.1) and a lone trailing escape a
space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "BASIC",
    "EXTENSION",
    "Gsm7Error",
    "decode_gsm7",
    "encode_gsm7",
    "first_not_ascii_alike",
    "is_gsm7",
    "septets",
]

# fmt: off
#: The basic table, by septet (0x1B is the escape).
BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# fmt: on
assert len(BASIC) == 128
#: The extension table: the septet after the escape -> character.
EXTENSION: Final[Mapping[int, str]] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_ESC: Final = 0x1B
_ENCODE: Final[dict[str, bytes]] = {
    **{ch: bytes([code]) for code, ch in enumerate(BASIC) if code != _ESC},
    **{ch: bytes([_ESC, code]) for code, ch in EXTENSION.items()},
}
#: The octets (and ASCII characters) GSM 03.38 and ASCII read alike.
_ASCII_ALIKE: Final = bytes(
    code for code, ch in enumerate(BASIC) if ord(ch) == code and code != _ESC
)


class Gsm7Error(ValueError):
    """A character outside GSM 03.38; the message names the first one."""


def _ascii_alike_octets(text: str) -> bytes | None:
    """``text`` as ASCII octets if every character is ASCII-alike, else None."""
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    return None if raw.translate(None, _ASCII_ALIKE) else raw


def first_not_ascii_alike(text: str) -> int | None:
    """The position of the first character of ``text`` that GSM 03.38 and ASCII
    do not encode alike (module docstring), or None if there is none."""
    for position, ch in enumerate(text):
        code = ord(ch)
        if code > 0x7F or code not in _ASCII_ALIKE:
            return position
    return None


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` exists in GSM 03.38 (with extension)."""
    return all(ch in _ENCODE for ch in text)


def septets(text: str) -> int:
    """How many septets ``text`` takes in GSM-7 (extension characters count two).

    Raises Gsm7Error for a character outside GSM 03.38.
    """
    if _ascii_alike_octets(text) is not None:
        return len(text)
    return len(encode_gsm7(text))


def encode_gsm7(text: str) -> bytes:
    """GSM 03.38 unpacked septets (data_coding 0); extension characters take two.

    Raises Gsm7Error naming the first character outside GSM 03.38.
    """
    raw = _ascii_alike_octets(text)
    if raw is not None:
        return raw  # the common case, by the fast path
    try:
        return b"".join([_ENCODE[ch] for ch in text])
    except KeyError as exc:
        ch = exc.args[0]
        raise Gsm7Error(f"character {ch!r} is not in GSM 03.38") from None


def decode_gsm7(payload: bytes) -> str:
    """Unpacked GSM 03.38 septets as text; never raises (module docstring)."""
    if not payload.translate(None, _ASCII_ALIKE):
        return payload.decode("ascii")  # the common case, by the fast path
    out: list[str] = []
    escaped = False
    for octet in payload:
        if octet > 0x7F:
            out.append("\ufffd")
            escaped = False
        elif escaped:
            out.append(EXTENSION.get(octet, BASIC[octet]))
            escaped = False
        elif octet == _ESC:
            escaped = True
        else:
            out.append(BASIC[octet])
    if escaped:
        out.append(" ")
    return "".join(out)
