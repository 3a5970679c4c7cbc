"""Masking of phone numbers for logs (private to the link until the lead unifies it)."""

from __future__ import annotations

__all__ = ["mask_msisdn"]


def mask_msisdn(number: str) -> str:
    """Return ``number`` in its national form with the middle digits hidden.

    ``84327123686``, ``+84327123686`` and ``0327123686`` all give ``0327xxx686``.
    Short codes (up to 6 digits) are not personal data and pass unchanged;
    anything that is not a number becomes ``xxx``.
    """
    digits = number.strip().removeprefix("+")
    if not digits.isdigit():
        return "xxx"
    if len(digits) <= 6:
        return digits
    if digits.startswith("00"):
        digits = digits[2:]
    # By length, not by prefix: a 9-digit national number may itself start with 84.
    if digits.startswith("84") and len(digits) in (11, 12):
        national = "0" + digits[2:]
    elif not digits.startswith("0") and len(digits) in (9, 10):
        national = "0" + digits
    else:
        national = digits
    if len(national) < 8:
        return "xxx"
    return f"{national[:4]}xxx{national[-3:]}"
