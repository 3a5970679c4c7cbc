"""The link's phone-number masking for logs (first 4 and last 3 of the national form)."""

from __future__ import annotations

import pytest

from smscd.link._mask import mask_msisdn


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("0327123686", "0327xxx686"),
        ("84327123686", "0327xxx686"),
        ("+84327123686", "0327xxx686"),
        ("0084327123686", "0327xxx686"),
        ("327123686", "0327xxx686"),
        ("841627123686", "0162xxx686"),  # pre-2018 11-digit national form
        ("01627123686", "0162xxx686"),
        ("849123456", "0849xxx456"),  # 9-digit national number starting with 84
        ("8079", "8079"),  # short code: not personal data
        ("VSS", "xxx"),
        ("", "xxx"),
    ],
)
def test_mask_msisdn(number: str, masked: str) -> None:
    assert mask_msisdn(number) == masked
