"""mask_msisdn for any text: never raises, idempotent, never shows a number."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smscd.numbers import canonical_msisdn, mask_msisdn

SETTINGS = settings(max_examples=300, deadline=None)
MASKED_MOBILE = re.compile(r"\A0[0-9]{3}xxx[0-9]{3}\Z")

#: Texts that look like addresses as often as not.
addresses = st.one_of(
    st.text(),
    st.text(alphabet="0123456789+ -.()#x", max_size=20),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789 ", max_size=14),
    st.from_regex(r"\A(\+84|84|0)?(3|16)[0-9]{8}\Z"),
)


@SETTINGS
@given(addresses)
def test_mask_never_shows_a_number_and_is_idempotent(text: str) -> None:
    masked = mask_msisdn(text)
    assert mask_msisdn(masked) == masked
    assert not re.search(r"[0-9]{7}", masked)
    assert len(masked) <= max(len(text), 10)
    if canonical_msisdn(text) is not None:
        assert MASKED_MOBILE.match(masked)
    elif MASKED_MOBILE.match(masked):
        assert masked == text  # only an address masked already reads as one
