"""One rule for what logs and operators see of an address (smscd.numbers.mask_msisdn),
the same for the link, the logging processor, the reset pipeline and the ops
commands. The comments name what the link's and the pipeline's former masks
gave where they differed."""

from __future__ import annotations

import pytest

import smscd.reset
from smscd import numbers
from smscd.numbers import mask_msisdn


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        # 1. A Vietnamese mobile in any form: national form, first 4, xxx, last 3.
        ("0327123686", "0327xxx686"),
        ("84327123686", "0327xxx686"),
        ("+84327123686", "0327xxx686"),
        ("0084327123686", "0327xxx686"),
        ("327123686", "0327xxx686"),
        ("849123456", "0849xxx456"),  # a 9-digit national number starting with 84
        ("84843000686", "0843xxx686"),
        # Written with spaces, dashes, dots or parentheses (the link gave xxx).
        ("84 327 123 686", "0327xxx686"),
        ("0327-123-686", "0327xxx686"),
        ("(+84) 327.123.686", "0327xxx686"),
        # Pre-2018 numbers: one phone, one mask (the link gave 0162xxx686).
        ("01627123686", "0327xxx686"),
        ("841627123686", "0327xxx686"),
        # 2. Masked already: unchanged (the link gave xxx, the pipeline xxxxxxx686).
        ("0327xxx686", "0327xxx686"),
        # 3. Short codes are not personal data (the pipeline gave x079, xxx, xx, xxx456).
        ("8079", "8079"),
        ("686", "686"),
        ("12", "12"),
        ("123456", "123456"),
        # 4. Sender names are not phones (the link gave xxx, the pipeline xxxxTEL...).
        ("VIETTEL", "VIETTEL"),
        ("VssID", "VssID"),
        ("VSS", "VSS"),
        ("BHXH 8079", "BHXH 8079"),
        # ...but a name too long, or with 7 digits or more, is masked.
        ("VIETTEL 0327123686", "xxx686"),
        ("A0327123", "xxx123"),
        # 5. Anything else: xxx and the last 3 characters, length and prefix hidden
        #    (the pipeline kept the length; the link read +376312345 as 0376xxx345).
        ("+1 650 253 0000", "xxx000"),
        ("0243 123 4567", "xxx567"),
        ("1234567", "xxx567"),
        ("+376312345", "xxx345"),  # a foreign sender key
        ("#0241234567", "xxx567"),  # a sender key of no known numbering
        ("#VIETTEL", "xxxTEL"),
        # ...only xxx for 6 characters or fewer (the link gave 8079 for +8079).
        ("+8079", "xxx"),
        ("\u0110T", "xxx"),
        # Nothing to hide (the link gave xxx).
        ("", ""),
    ],
)
def test_one_mask_rule(value: str, masked: str) -> None:
    assert mask_msisdn(value) == masked
    assert mask_msisdn(masked) == masked  # masking twice changes nothing


def test_the_pipeline_and_the_ops_commands_use_the_same_functions() -> None:
    assert smscd.reset.mask_msisdn is numbers.mask_msisdn
    assert smscd.reset.canonical_msisdn is numbers.canonical_msisdn
    assert smscd.reset.sender_key is numbers.sender_key
    assert smscd.reset.national_form is numbers.national_form
    assert smscd.reset.is_mobile_key is numbers.is_mobile_key
    assert smscd.reset.OLD_PREFIXES is numbers.OLD_PREFIXES
