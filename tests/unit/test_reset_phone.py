"""Vietnamese mobile numbers: canonical form, 2018 conversion, masking."""

from __future__ import annotations

import pytest

from smscd.reset import (
    OLD_PREFIXES,
    canonical_msisdn,
    is_mobile_key,
    mask_msisdn,
    national_form,
    sender_key,
)

# The 2018 conversion as published (Decision 798/QD-BTTTT), written out again
# here so that a wrong entry in the module's table fails a test.
CONVERSIONS = [
    ("Viettel", "0162", "032"),
    ("Viettel", "0163", "033"),
    ("Viettel", "0164", "034"),
    ("Viettel", "0165", "035"),
    ("Viettel", "0166", "036"),
    ("Viettel", "0167", "037"),
    ("Viettel", "0168", "038"),
    ("Viettel", "0169", "039"),
    ("MobiFone", "0120", "070"),
    ("MobiFone", "0121", "079"),
    ("MobiFone", "0122", "077"),
    ("MobiFone", "0126", "076"),
    ("MobiFone", "0128", "078"),
    ("VinaPhone", "0123", "083"),
    ("VinaPhone", "0124", "084"),
    ("VinaPhone", "0125", "085"),
    ("VinaPhone", "0127", "081"),
    ("VinaPhone", "0129", "082"),
    ("Vietnamobile", "0186", "056"),
    ("Vietnamobile", "0188", "058"),
    ("Gmobile", "0199", "059"),
]
SUBSCRIBER = "7000686"


def forms(national: str) -> list[tuple[str, int | None]]:
    """Every written form of a national number (``0…``), with a plausible TON."""
    nsn = national[1:]
    spaced = f"{national[:4]} {national[4:7]} {national[7:]}"
    dashed = f"{national[:4]}-{national[4:7]}-{national[7:]}"
    return [
        (national, 0),
        (national, None),
        (national, 2),
        (spaced, None),
        (dashed, None),
        ("84" + nsn, 1),
        ("84" + nsn, 0),
        ("84" + nsn, None),
        ("+84" + nsn, 1),
        ("+84 " + nsn, None),
        ("0084" + nsn, 0),
        ("0084" + nsn, None),
        ("(+84) " + nsn, None),
    ]


def test_the_table_is_the_published_one() -> None:
    assert dict(OLD_PREFIXES) == {old: new for _, old, new in CONVERSIONS}


@pytest.mark.parametrize(("carrier", "old", "new"), CONVERSIONS)
def test_old_and_new_numbers_of_every_carrier(carrier: str, old: str, new: str) -> None:
    expected = "84" + new[1:] + SUBSCRIBER
    for text, ton in forms(old + SUBSCRIBER) + forms(new + SUBSCRIBER):
        assert canonical_msisdn(text, ton) == expected, (carrier, text, ton)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01627000686", "84327000686"),
        ("841627000686", "84327000686"),
        ("+841627000686", "84327000686"),
        ("00841627000686", "84327000686"),
        ("0327000686", "84327000686"),
        ("84327000686", "84327000686"),
        # a 9-digit national number that itself starts with 84 (VinaPhone 084)
        ("0843000686", "84843000686"),
        ("84843000686", "84843000686"),
        ("843000686", "84843000686"),
        ("+84843000686", "84843000686"),
        # bare national significant numbers
        ("327000686", "84327000686"),
        ("1627000686", "84327000686"),
        # other live ranges
        ("0912345678", "84912345678"),
        ("0886000111", "84886000111"),
        ("0599000111", "84599000111"),
        ("0708000111", "84708000111"),
        # a stray trunk zero after the country code
        ("840327000686", "84327000686"),
        ("+84 (0) 327 000 686", "84327000686"),
        # any whitespace
        ("\t0327\u00a0000\u2009686\n", "84327000686"),
    ],
)
def test_canonical(text: str, expected: str) -> None:
    assert canonical_msisdn(text) == expected


@pytest.mark.parametrize(
    ("text", "ton"),
    [
        ("", None),
        ("   ", None),
        ("+", None),
        ("84", None),
        ("0084", None),
        ("abc", None),
        ("VIETTEL", 5),
        ("8079", 0),
        ("12345", None),
        ("032700068", None),  # one digit short
        ("03270006860", None),  # one digit long
        ("8432700068", None),
        ("843270006860", None),  # 84 + 10 digits that are not an old number
        ("+1 650 253 0000", 1),
        ("+85212345678", 1),
        ("0044 20 7946 0000", None),
        ("0243 123 4567", None),  # a Hanoi landline
        ("0212345678", None),  # 0 + 9 digits starting with 2
        ("0127000686", None),  # 0 + 9 digits starting with 1
        ("0467000686", None),
        ("0627000686", None),
        ("01307000686", None),  # an 11-digit number outside the conversion
        ("01997000686x", None),
        ("0327000686#", None),
        ("+ 84 327 000 686 +", None),
        ("++84327000686", None),
        ("327000686", 1),  # TON international needs the 84
        ("\u0660\u0663\u0662\u0667\u0660\u0660\u0660\u0666\u0668\u0666", None),  # Arabic-Indic
        ("\uff10\uff13\uff12\uff17\uff10\uff10\uff10\uff16\uff18\uff16", None),  # full-width
    ],
)
def test_not_a_mobile_number(text: str, ton: int | None) -> None:
    assert canonical_msisdn(text, ton) is None


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("84327000686", "0327xxx686"),
        ("0327000686", "0327xxx686"),
        ("+84327000686", "0327xxx686"),
        ("01627000686", "0327xxx686"),
        ("841627000686", "0327xxx686"),
        ("84843000686", "0843xxx686"),
        # not a mobile: a sender name or a short code as it is, anything else
        # xxx and its last 3 (the whole rule: tests/unit/test_numbers.py)
        ("VIETTEL", "VIETTEL"),
        ("8079", "8079"),
        ("+1 650 253 0000", "xxx000"),
        ("0243 123 4567", "xxx567"),
        ("", ""),
    ],
)
def test_mask(value: str, masked: str) -> None:
    assert mask_msisdn(value) == masked


def test_national_form() -> None:
    assert national_form("84327000686") == "0327000686"
    assert national_form("01627000686") == "0327000686"
    assert national_form("84843000686") == "0843000686"
    with pytest.raises(ValueError, match="not a Vietnamese mobile number") as info:
        national_form("0243 123 4567")
    assert "4567" not in str(info.value)


@pytest.mark.parametrize(
    ("addr", "ton", "key"),
    [
        ("84327000686", 1, "84327000686"),
        ("0327000686", 0, "84327000686"),
        ("+84327000686", 1, "84327000686"),
        ("01627000686", 0, "84327000686"),
        ("376312345", 1, "+376312345"),
        ("+376312345", 0, "+376312345"),
        ("00376312345", 0, "+376312345"),
        ("VIETTEL", 5, "#VIETTEL"),
        ("0241234567", 0, "#0241234567"),
        ("", 0, "#"),
    ],
)
def test_sender_key_is_one_key_per_sender_and_foreign_keys_are_no_mobile(
    addr: str, ton: int, key: str
) -> None:
    assert sender_key(addr, ton) == key
    assert is_mobile_key(key) is key.startswith("84")
    assert len(key) <= len(addr) + 1
