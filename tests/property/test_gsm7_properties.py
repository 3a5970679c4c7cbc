"""The GSM-7 leaf for any text: the ASCII-alike check and the septet count
agree with the encoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smscd.gsm7 import Gsm7Error, encode_gsm7, first_not_ascii_alike, is_gsm7, septets

SETTINGS = settings(max_examples=300, deadline=None)

texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="@$_`{}[]~^\\|\n\r\t aZ09\u20ac\u00e9", max_size=40),
)


@SETTINGS
@given(texts)
def test_ascii_alike_means_the_gsm7_octets_are_the_ascii_octets(text: str) -> None:
    position = first_not_ascii_alike(text)
    if position is None:
        assert encode_gsm7(text) == text.encode("ascii")
        assert septets(text) == len(text)
    else:
        head, ch = text[:position], text[position]
        assert encode_gsm7(head) == head.encode("ascii")
        assert not is_gsm7(ch) or encode_gsm7(ch) != ch.encode("utf-8")


@SETTINGS
@given(texts)
def test_septets_count_the_encoded_octets(text: str) -> None:
    if is_gsm7(text):
        assert septets(text) == len(encode_gsm7(text))
    else:
        with pytest.raises(Gsm7Error):
            septets(text)
        with pytest.raises(Gsm7Error):
            encode_gsm7(text)
