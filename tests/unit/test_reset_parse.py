"""The 8079 parser on what subscribers really type."""

from __future__ import annotations

import pytest

from smscd.reset import (
    SERVICES,
    BadSyntax,
    InvalidCode,
    ParsedMessage,
    ResetRequest,
    parse_message,
)

OK = ResetRequest(code="0123456789")
BAD = BadSyntax()
#: 0123456789 in Arabic-Indic digits: digits, but not ASCII ones.
ARABIC_INDIC = "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"


def invalid(raw: str) -> InvalidCode:
    return InvalidCode(raw=raw)


VARIANTS: list[tuple[str, ParsedMessage]] = [
    # the documented form, and case
    ("BH MK 0123456789", OK),
    ("bh mk 0123456789", OK),
    ("Bh Mk 0123456789", OK),
    ("bH mK 0123456789", OK),
    # spacing
    ("  BH   MK   0123456789  ", OK),
    ("BH\tMK\t0123456789", OK),
    ("BH\nMK\n0123456789\n", OK),
    ("BH\r\nMK 0123456789", OK),
    ("BH\u00a0MK\u00a00123456789", OK),  # no-break space
    ("BH\u200bMK 0123456789", OK),  # zero-width space
    ("\ufeffBH MK 0123456789", OK),  # byte-order mark
    # glued
    ("BHMK 0123456789", OK),
    ("BHMK0123456789", OK),
    ("BH MK0123456789", OK),
    ("bhmk0123456789", OK),
    ("B H M K 0123456789", OK),
    # punctuation between or after tokens
    ("BH-MK-0123456789", OK),
    ("BH MK: 0123456789.", OK),
    ("BH.MK.0123456789", OK),
    ('"BH MK 0123456789"', OK),
    ("\u201cBH MK 0123456789\u201d", OK),  # curly quotes
    ("BH MK <0123456789>", OK),  # copied from the help text
    ("BH_MK_0123456789", OK),
    ("BH+MK+0123456789", OK),
    ("BH, MK, 0123456789!", OK),
    ("BH MK (0123456789)", OK),
    ("BH MK #0123456789", OK),
    ("BH MK 0123456789...", OK),
    # the code in groups
    ("BH MK 0123 456 789", OK),
    ("BH MK 0123.456.789", OK),
    ("BH MK 0123-456-789", OK),
    ("BH MK 01 23 45 67 89", OK),
    # full-width (some East-Asian keyboards)
    ("\uff22\uff28 \uff2d\uff2b \uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", OK),
    ("\uff42\uff48\u3000\uff4d\uff4b\u30000123456789", OK),
    # a comment after the code, set off and without digits
    ("BH MK 0123456789 cam on", OK),
    ("BH MK 0123456789 c\u1ea3m \u01a1n", OK),  # cam on with diacritics
    ("BH MK 0123456789. Cam on!", OK),
    ("BH MK 0123456789 \U0001f64f", OK),  # an emoji
    # BH MK, but not exactly 10 digits
    ("BH MK", invalid("")),
    ("bhmk", invalid("")),
    ("BH MK   ", invalid("")),
    ("BH MK 012345678", invalid("012345678")),
    ("BH MK 01234567890", invalid("01234567890")),
    ("BH MK 0123 456 7890", invalid("0123 456 7890")),
    ("BH MK 01234X6789", invalid("01234X6789")),
    ("BH MK X123456789", invalid("X123456789")),
    ("BH MKA0123456789", invalid("A0123456789")),
    ("BH MK 0123456789abc", invalid("0123456789abc")),
    ("BH MK 0123456789 0987654321", invalid("0123456789 0987654321")),
    ("BH MK 0123456789 lan 2", invalid("0123456789 lan 2")),
    ("BH MK ma so 0123456789", invalid("ma so 0123456789")),
    ("BH MK cam on", invalid("cam on")),
    ("BH MK BH MK 0123456789", invalid("BH MK 0123456789")),
    ("BH MK: " + ARABIC_INDIC, invalid(ARABIC_INDIC)),
    ("BH MK 0123456789\u0663", invalid("0123456789\u0663")),
    ("BH MK \u00b2123456789", invalid("\u00b2123456789")),
    # not a BH MK message
    ("", BAD),
    ("   ", BAD),
    ("BH", BAD),
    ("bh", BAD),
    ("MK 0123456789", BAD),
    ("0123456789", BAD),
    ("8079 BH MK 0123456789", BAD),
    ("B\u0124 MK 0123456789", BAD),  # BĤ, a diacritic near-miss
    ("BH M\u1ef8 0123456789", BAD),  # MỸ
    ("BH\u0302 MK 0123456789", BAD),  # H with a combining circumflex
    ("\u0110H MK 0123456789", BAD),  # ĐH
    ("BHXH MK 0123456789", BAD),
    ("BH KM 0123456789", BAD),
    ("MK BH 0123456789", BAD),
    ("BH 0123456789", BAD),
    ("BH MX 0123456789", BAD),
    ("xin chao", BAD),
    ("\u00dfH MK 0123456789", BAD),  # sharp s: str.upper() would give "SSH"
    ("\u017fBH MK 0123456789", BAD),  # long s: str.upper() would give "S"
    ("\U0001d401H MK 0123456789", BAD),  # mathematical bold B
    ("\U0001f600 BH MK 0123456789", BAD),  # an emoji first
]


@pytest.mark.parametrize(("text", "expected"), VARIANTS, ids=[repr(t) for t, _ in VARIANTS])
def test_variant(text: str, expected: ParsedMessage) -> None:
    assert parse_message(text) == expected


def test_the_table_is_large_and_covers_every_result() -> None:
    assert len(VARIANTS) >= 40
    kinds = {type(expected) for _, expected in VARIANTS}
    assert kinds == {ResetRequest, InvalidCode, BadSyntax}


def test_code_keeps_leading_zeros_and_is_ascii() -> None:
    result = parse_message("bh mk \uff10\uff10\uff10 000 0001")
    assert result == ResetRequest(code="0000000001")
    assert isinstance(result, ResetRequest)
    assert result.code.isascii()


def test_the_router_knows_bh_mk_only() -> None:
    assert [s.keyword for s in SERVICES] == ["BH MK"]
    assert [s.letters for s in SERVICES] == ["BHMK"]


def test_results_are_frozen_values() -> None:
    result = parse_message("BH MK 0123456789")
    assert result == ResetRequest(code="0123456789")
    assert hash(result) == hash(ResetRequest(code="0123456789"))
    assert parse_message("x") == BadSyntax()
