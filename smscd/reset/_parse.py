"""The keyword router and tolerant parser of shortcode 8079.

Theory of operation
-------------------
Subscribers type on every kind of phone: lowercase, glued tokens, punctuation,
full-width forms from some input methods, the code split in groups. The parser
accepts whatever is *unambiguous* and turns the rest into a help reply; it never
raises, whatever ``str`` it is given (a hypothesis test proves it).

1. **Normalise, one character for one.** Full-width ASCII forms (U+FF01..U+FF5E)
   become their ASCII twins, U+3000 becomes a space, and ASCII letters are
   upper-cased *by table* (``str.upper`` would turn U+00DF sharp s into ``SS``,
   U+017F long s into ``S`` and U+0131 dotless i into ``I``, forging keywords
   from non-ASCII letters). Because
   the mapping is one-to-one, positions in the normalised text are positions in
   the original, which ``InvalidCode.raw`` uses.
2. **Tokenise.** Every character is one of

   * a *letter*: ASCII ``A-Z``, or any other Unicode letter or combining mark
     (``Ĥ``, ``Đ``, ``ơ``): a word containing one is never a keyword;
   * an ASCII *digit*;
   * a *separator*: whitespace (tab, newline, no-break space...), punctuation
     (``. , : ; - _ / ' " ! ? ( ) < > # *``, curly quotes, dashes...), the math
     and modifier symbols ``+ = | ~ ^`` and their kin, control and zero-width
     format characters;
   * *other*: anything else (emoji, currency signs, non-ASCII digits...).

   Tokens are maximal runs of letters (WORD), digits (NUMBER) or others
   (OTHER); a letter/digit change splits a token even without a separator, so
   ``MK0123456789`` is ``MK`` then ``0123456789``. Each token remembers whether a
   separator preceded it.
3. **Route.** The leading WORD tokens are read as one stream of letters and
   matched against the keywords of ``SERVICES`` (today only ``BH MK``), longest
   keyword first. Word boundaries inside the keyword do not matter (``BHMK``,
   ``BH MK``, ``B H M K``); letters glued after it (``BH MKA1``) start the
   arguments. A message whose leading words are not a keyword is BadSyntax.
4. **Arguments of BH MK.** The code is the NUMBER tokens right after the
   keyword, joined (so ``0123 456 789`` and ``0123.456.789`` are one code). It
   must have exactly 10 digits. After the code may come a comment (``cam on``,
   ``cảm ơn``) when it is set off by a separator and holds no digit at all;
   anything else is InvalidCode.

Trailing words are accepted on purpose: the code is unambiguous, the sender is
authenticated by the carrier (the match against the registered phone is the real
check), and a refusal would cost the subscriber another 1,000 VND message. A
comment with a digit in it (``BH MK 0123456789 lan 2``) is refused because the
digit might belong to the code; letters glued to the code (``0123456789abc``)
are refused because the code is then not cleanly delimited.

Examples
--------

==================================  ===========================================
text                                result
==================================  ===========================================
``BH MK 0123456789``                ResetRequest("0123456789")
``bh mk 0123456789``                ResetRequest (any case)
``BHMK0123456789``                  ResetRequest (glued)
``BH MK0123456789``                 ResetRequest (code glued to MK)
``BH-MK-0123456789``                ResetRequest (punctuation between tokens)
``BH MK: 0123456789.``              ResetRequest
``"BH MK 0123456789"``              ResetRequest (quotes)
``BH MK <0123456789>``              ResetRequest (copied from the help text)
``BH MK 0123 456 789``              ResetRequest (code in groups)
``\\tBH\\u00a0MK\\n0123456789``     ResetRequest (any whitespace)
``BH MK 0123456789`` in full-width  ResetRequest (U+FF22 U+FF28 ...)
``BH MK 0123456789 cam on``         ResetRequest (comment ignored)
``BH MK``                           InvalidCode("")
``BH MK 012345678``                 InvalidCode (9 digits)
``BH MK 01234567890``               InvalidCode (11 digits)
``BH MK 01234X6789``                InvalidCode (letter in the code)
``BH MK 0123456789abc``             InvalidCode (letters glued to the code)
``BH MK 0123456789 lan 2``          InvalidCode (digit after the code)
``BH MK ma so 0123456789``          InvalidCode (the code must come first)
``(empty)``, ``BH``                 BadSyntax
``MK 0123456789``                   BadSyntax
``BĤ MK 0123456789``                BadSyntax (diacritic near-miss)
``BHXH MK 0123456789``              BadSyntax
``8079 BH MK 0123456789``           BadSyntax (must start with the keyword)
==================================  ===========================================

To add a service, add a result class to ``ParsedMessage`` and an entry to
``SERVICES``: its keyword and the function that reads its arguments.
"""

from __future__ import annotations

import enum
import unicodedata
from typing import TYPE_CHECKING, TypeAlias

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "SERVICES",
    "BadSyntax",
    "InvalidCode",
    "ParsedMessage",
    "ResetRequest",
    "Service",
    "parse_message",
]

#: Length of a social-insurance code (ma so BHXH).
CODE_LENGTH = 10


@attrs.frozen(kw_only=True)
class ResetRequest:
    """``BH MK`` and a well-formed code: ask for a new password."""

    #: Exactly 10 ASCII digits.
    code: str


@attrs.frozen(kw_only=True)
class InvalidCode:
    """``BH MK`` followed by anything but exactly 10 digits."""

    #: The text after the keyword, as typed (surrounding whitespace stripped).
    raw: str


@attrs.frozen(kw_only=True)
class BadSyntax:
    """Not a message of any service of the shortcode."""


#: The closed union of parse results: match it with ``match`` and ``assert_never``.
ParsedMessage: TypeAlias = ResetRequest | InvalidCode | BadSyntax


class _Kind(enum.Enum):
    #: Letters: ASCII A-Z (upper-cased) or any Unicode letter or mark.
    WORD = "word"
    #: ASCII digits.
    NUMBER = "number"
    #: Anything that is neither a letter, a digit nor a separator.
    OTHER = "other"


@attrs.frozen(kw_only=True)
class _Token:
    kind: _Kind
    #: The normalised text of the token.
    text: str
    #: Offset of the token's first character in the original text.
    start: int
    #: Whether a separator comes right before the token.
    gap_before: bool


_SEPARATOR_CATEGORIES = frozenset(
    {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sk", "Cc", "Cf", "Zs", "Zl", "Zp"}
)
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
_FULLWIDTH_FIRST = 0xFF01
_FULLWIDTH_LAST = 0xFF5E
_FULLWIDTH_OFFSET = 0xFEE0
_IDEOGRAPHIC_SPACE = "\u3000"


def _normalise(ch: str) -> str:
    code = ord(ch)
    if _FULLWIDTH_FIRST <= code <= _FULLWIDTH_LAST:
        ch = chr(code - _FULLWIDTH_OFFSET)
    elif ch == _IDEOGRAPHIC_SPACE:
        return " "
    index = _ASCII_LOWER.find(ch)
    return _ASCII_UPPER[index] if index >= 0 else ch


def _classify(ch: str) -> _Kind | None:
    """The kind of a normalised character; None for a separator."""
    if ch in _DIGITS:
        return _Kind.NUMBER
    if ch in _ASCII_UPPER:
        return _Kind.WORD
    if ch.isspace():
        return None
    category = unicodedata.category(ch)
    if category in _SEPARATOR_CATEGORIES:
        return None
    if category[0] in "LM":
        return _Kind.WORD
    return _Kind.OTHER


def _tokenise(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    kind: _Kind | None = None
    chars: list[str] = []
    start = 0
    gap = False
    for index, original in enumerate(text):
        ch = _normalise(original)
        this = _classify(ch)
        if this is not kind and chars:
            assert kind is not None
            tokens.append(_Token(kind=kind, text="".join(chars), start=start, gap_before=gap))
            chars = []
            gap = False
        if this is None:
            gap = True
        else:
            if not chars:
                start = index
            chars.append(ch)
        kind = this
    if chars:
        assert kind is not None
        tokens.append(_Token(kind=kind, text="".join(chars), start=start, gap_before=gap))
    return tokens


@attrs.frozen(kw_only=True)
class Service:
    """One keyword of the shortcode and the reader of its arguments."""

    #: The keyword as documented to subscribers (``"BH MK"``); matched
    #: case-insensitively with or without the spaces.
    keyword: str
    #: Reads the arguments: the original text and the tokens after the keyword.
    parse_args: Callable[[str, Sequence[_Token]], ParsedMessage] = attrs.field(repr=False)

    @property
    def letters(self) -> str:
        return self.keyword.replace(" ", "").upper()


def _has_digit(text: str) -> bool:
    return any(ch in _DIGITS or unicodedata.category(ch) == "Nd" for ch in text)


def _parse_reset_args(text: str, args: Sequence[_Token]) -> ParsedMessage:
    if not args:
        return InvalidCode(raw="")
    raw = text[args[0].start :].strip()
    digits: list[str] = []
    index = 0
    while index < len(args) and args[index].kind is _Kind.NUMBER:
        digits.append(args[index].text)
        index += 1
    code = "".join(digits)
    if len(code) != CODE_LENGTH:
        return InvalidCode(raw=raw)
    if index < len(args):
        comment = args[index]
        if not comment.gap_before or _has_digit(text[comment.start :]):
            return InvalidCode(raw=raw)
    return ResetRequest(code=code)


#: The services of the shortcode, routed by keyword (longest match wins).
SERVICES: tuple[Service, ...] = (Service(keyword="BH MK", parse_args=_parse_reset_args),)


def _route(tokens: Sequence[_Token]) -> tuple[Service, list[_Token]] | None:
    """The service whose keyword the leading words spell, and the tokens after it."""
    best: tuple[Service, list[_Token]] | None = None
    for service in SERVICES:
        keyword = service.letters
        letters = ""
        for index, token in enumerate(tokens):
            if token.kind is not _Kind.WORD:
                break
            candidate = letters + token.text
            if candidate.startswith(keyword):
                used = len(keyword) - len(letters)
                rest = list(tokens[index + 1 :])
                if used < len(token.text):
                    glued = _Token(
                        kind=_Kind.WORD,
                        text=token.text[used:],
                        start=token.start + used,
                        gap_before=False,
                    )
                    rest.insert(0, glued)
                if best is None or len(keyword) > len(best[0].letters):
                    best = (service, rest)
                break
            if not keyword.startswith(candidate):
                break
            letters = candidate
    return best


def parse_message(text: str) -> ParsedMessage:
    """Parse the text of an MO to 8079; never raises (see the module docstring)."""
    tokens = _tokenise(text)
    routed = _route(tokens)
    if routed is None:
        return BadSyntax()
    service, args = routed
    return service.parse_args(text, args)
