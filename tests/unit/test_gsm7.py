"""One GSM 03.38 table (smscd.gsm7) behind the SMPP codec and the reply templates."""

from __future__ import annotations

import pytest

from smscd import gsm7
from smscd.gsm7 import (
    Gsm7Error,
    decode_gsm7,
    encode_gsm7,
    first_not_ascii_alike,
    is_gsm7,
    septets,
)
from smscd.reset import DEFAULT_TEXTS, TemplateError, Templates
from smscd.smpp import LocalProtocolError, decode_short_message
from smscd.smpp import encode_gsm7 as smpp_encode_gsm7


def test_encode_exact_septets() -> None:
    assert encode_gsm7("Mat khau: 123456\n") == b"Mat khau: 123456\n"
    assert encode_gsm7("a_b@c$") == b"a\x11b\x00c\x02"
    assert encode_gsm7("{\u20ac}") == b"\x1b\x28\x1b\x65\x1b\x29"
    assert encode_gsm7("\u00e9\u00c9") == b"\x05\x1f"


def test_a_character_outside_gsm7_is_named() -> None:
    with pytest.raises(Gsm7Error, match=r"^character '\u1ead' is not in GSM 03\.38$"):
        encode_gsm7("M\u1eadt")
    with pytest.raises(Gsm7Error, match="'`'"):
        septets("a`b")
    assert isinstance(Gsm7Error("x"), ValueError)
    # The SMPP core raises its own error with the same message.
    with pytest.raises(LocalProtocolError, match=r"^character '\u1ead' is not in GSM 03\.38$"):
        smpp_encode_gsm7("M\u1eadt")


def test_decode_never_raises() -> None:
    assert decode_gsm7(b"a\x11b\x00c\x02") == "a_b@c$"
    assert decode_gsm7(b"\x1b\x28x\x1b\x29") == "{x}"
    assert decode_gsm7(b"\x1bA") == "A"  # unknown escape: the base character
    assert decode_gsm7(b"ab\x1b") == "ab "  # lone trailing escape: a space
    assert decode_gsm7(b"a\x80b") == "a\ufffdb"
    assert decode_short_message(0, b"a\x11b") == "a_b"  # the SMPP core decodes with it


@pytest.mark.parametrize("ch", list("@_$`{}[]~^\\|"))
def test_the_characters_ascii_reads_otherwise_are_found(ch: str) -> None:
    assert first_not_ascii_alike(f"Goi 1900{ch}9068") == 8


def test_ascii_alike_texts() -> None:
    assert first_not_ascii_alike("") is None
    assert first_not_ascii_alike("Soan tin: BH MK <Ma so BHXH> gui 8079.\r\n") is None
    assert first_not_ascii_alike("ab\u00e9") == 2  # in GSM-7, at another code
    assert first_not_ascii_alike("a\u1eadb") == 1  # not in GSM-7 at all
    assert is_gsm7("ab\u00e9{") and not is_gsm7("a\u1eadb")
    assert septets("a{b\u20ac") == 6
    assert gsm7.BASIC[0x11] == "_" and gsm7.EXTENSION[0x65] == "\u20ac"


def test_every_default_reply_is_ascii_alike_and_one_sms() -> None:
    for template in DEFAULT_TEXTS.values():
        text = template.replace("{code}", "0123456789").replace("{password}", "012345")
        assert first_not_ascii_alike(text) is None
        assert smpp_encode_gsm7(text) == text.encode("ascii")
        assert septets(text) <= 160


def test_templates_refuse_what_the_leaf_finds_first() -> None:
    # Several unsafe characters: the first by position is named.
    with pytest.raises(TemplateError, match=r"must not contain '\|' \(not safe in GSM-7\)"):
        Templates.from_mapping({"mismatch": "a|b@c"})
