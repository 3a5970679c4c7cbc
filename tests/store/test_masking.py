from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smscd.store.sql import mask_body

SIX = re.compile(r"(?<!\d)\d{6}(?!\d)")


@settings(max_examples=200, deadline=None)
@given(
    code=st.from_regex(r"\A[0-9]{10}\Z"),
    password=st.from_regex(r"\A[0-9]{6}\Z"),
)
def test_the_reset_reply_keeps_its_code_and_loses_its_password(code: str, password: str) -> None:
    body = f"Cap lai mat khau thanh cong. Tai khoan: {code}/Mat khau: {password}"
    masked = mask_body(body)
    assert masked == f"Cap lai mat khau thanh cong. Tai khoan: {code}/Mat khau: ******"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789 :/.abcMatkhu", max_size=60))
def test_no_free_standing_six_digit_run_survives(text: str) -> None:
    masked = mask_body(text)
    assert SIX.search(masked) is None
    assert mask_body(masked) == masked
