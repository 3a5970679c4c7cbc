"""Vietnamese mobile numbers: one canonical form, the 2018 conversion, sender
keys, and the one rule for masking an address.

A leaf module: it imports nothing of smscd, so the link, the simulator, the
reset pipeline, the logging processor and the operator commands all use this
one implementation.

Theory of operation
-------------------
The canonical form is ``84`` followed by the 9-digit national significant number
(NSN): ``84327000686``. Every store column and every comparison uses it.

A number is read in three steps:

1. **Clean.** Spaces (any Unicode whitespace), dashes, dots and parentheses are
   dropped. What remains must be ASCII digits, optionally after ``+``.
2. **Find the NSN by its prefix of form, then by length.** ``+84…`` and
   ``0084…`` are international; ``0…`` is national (trunk prefix). Bare digits
   are international only when they are ``84`` followed by 9 or 10 digits (11 or
   12 digits in all); otherwise they are taken as the NSN itself, unless the SMSC
   said TON 1 (international), which then requires the ``84``. Length, not
   prefix, decides: ``0843000686`` is the national form of the NSN
   ``843000686`` (a VinaPhone 084 number), and stripping a leading ``84`` from it
   would be wrong. An international number carrying a stray trunk zero
   (``840327000686``, a common gateway bug) is read as ``84`` + ``327000686``.
3. **Convert and check.** A 10-digit NSN is a pre-2018 number: its first three
   digits must be one of the 2018 conversions (Decision 798/QĐ-BTTTT) and become
   the two-digit new prefix, the last 7 digits unchanged (``1627000686`` →
   ``327000686``). A 9-digit NSN must start with 3, 5, 7, 8 or 9 (the mobile
   ranges; landlines start with 2). Anything else is not a Vietnamese mobile
   number and gives None.

Number portability means a prefix never tells the carrier; nothing here tries.

Masking
-------
:func:`mask_msisdn` decides what a log line, the status page or an operator
command may show of an address, by one rule, in this order:

1. **A Vietnamese mobile number**, in any form :func:`canonical_msisdn`
   accepts, shows its national form with the three digits after the first four
   hidden: ``0327xxx686``. Every form of one phone (``84…``, ``+84…``, ``0…``,
   the pre-2018 ``0162…``) gives the same text, so ``grep 0327xxx686`` follows
   one subscriber.
2. **An address already masked** -- ``0`` + 3 digits + ``xxx`` + 3 digits, or
   ``xxx`` + at most 3 characters (rule 5) -- stays as it is: masking twice
   changes nothing.
3. **A short code**, 1 to 6 ASCII digits (``8079``), stays as it is: it is a
   service number, not personal data, and no subscriber number is that short
   (a Vietnamese subscriber number has 9 digits, 7 after the prefix).
4. **An alphanumeric sender name**, 1 to 11 characters (the GSM limit for an
   alphanumeric originator) of ASCII letters, digits and spaces with at least
   one letter and at most 6 digits (``VIETTEL``, ``VssID``), stays as it is: it
   names a sender, not a phone, and holds too few digits to carry a number.
5. **Anything else** -- a foreign or fixed-line number, a sender key such as
   ``+376312345`` or ``#0241234567``, a malformed address -- shows ``xxx`` and
   its last 3 characters (``xxx345``), or only ``xxx`` when it has 6 characters
   or fewer; neither its length nor its leading digits show. The empty string
   stays empty.

No output of rules 3 to 5 reads as a masked Vietnamese mobile, and no output
holds more than 6 digits in a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "OLD_PREFIXES",
    "canonical_msisdn",
    "is_mobile_key",
    "mask_msisdn",
    "national_form",
    "sender_key",
]

#: The 2018 conversion: old 11-digit national prefix -> new 10-digit prefix.
OLD_PREFIXES: Mapping[str, str] = {
    # Viettel
    "0162": "032",
    "0163": "033",
    "0164": "034",
    "0165": "035",
    "0166": "036",
    "0167": "037",
    "0168": "038",
    "0169": "039",
    # MobiFone
    "0120": "070",
    "0121": "079",
    "0122": "077",
    "0126": "076",
    "0128": "078",
    # VinaPhone
    "0123": "083",
    "0124": "084",
    "0125": "085",
    "0127": "081",
    "0129": "082",
    # Vietnamobile
    "0186": "056",
    "0188": "058",
    # Gmobile
    "0199": "059",
}

# The same table on NSNs: "162" -> "32".
_OLD_NSN_PREFIXES = {old[1:]: new[1:] for old, new in OLD_PREFIXES.items()}

_COUNTRY = "84"
_NSN_LENGTH = 9
_OLD_NSN_LENGTH = 10
_MOBILE_FIRST_DIGITS = frozenset("35789")
_DIGITS = frozenset("0123456789")
_DROPPED = frozenset("-.()")
_TON_INTERNATIONAL = 1


def _clean(addr: str) -> str:
    return "".join(ch for ch in addr if not (ch.isspace() or ch in _DROPPED))


def _nsn(digits: str, *, international: bool, ton: int | None) -> str | None:
    if international:
        if not digits.startswith(_COUNTRY):
            return None
        nsn = digits[len(_COUNTRY) :]
    elif digits.startswith("0"):
        return digits[1:]
    elif digits.startswith(_COUNTRY) and len(digits) - len(_COUNTRY) in (
        _NSN_LENGTH,
        _OLD_NSN_LENGTH,
    ):
        nsn = digits[len(_COUNTRY) :]
    elif ton == _TON_INTERNATIONAL:
        return None
    else:
        return digits
    if len(nsn) == _OLD_NSN_LENGTH and nsn.startswith("0"):
        nsn = nsn[1:]
    return nsn


def canonical_msisdn(addr: str, ton: int | None = None) -> str | None:
    """``84`` + 9 digits for any written form of a Vietnamese mobile number
    (``84…``, ``0…``, ``+84…``, ``0084…``, pre-2018 11-digit numbers of every
    carrier), or None if ``addr`` is not one. ``ton`` is the SMPP type of number;
    it matters only for bare digits without ``84`` (TON 1 rejects them)."""
    cleaned = _clean(addr)
    international = False
    if cleaned.startswith("+"):
        international = True
        cleaned = cleaned[1:]
    elif cleaned.startswith("00"):
        international = True
        cleaned = cleaned[2:]
    if not cleaned or not _DIGITS.issuperset(cleaned):
        return None
    nsn = _nsn(cleaned, international=international, ton=ton)
    if nsn is None:
        return None
    if len(nsn) == _OLD_NSN_LENGTH:
        new_prefix = _OLD_NSN_PREFIXES.get(nsn[:3])
        if new_prefix is None:
            return None
        nsn = new_prefix + nsn[3:]
    if len(nsn) != _NSN_LENGTH or nsn[0] not in _MOBILE_FIRST_DIGITS:
        return None
    return _COUNTRY + nsn


#: Prefixes of the sender keys that are not Vietnamese mobiles: ``+`` for an
#: international number, ``#`` for an address of no known numbering (a name,
#: a short code, a landline in national form). Neither ever reads as one.
_FOREIGN = "+"
_OTHER = "#"


def sender_key(addr: str, ton: int | None) -> str:
    """The one key of a sender, computed once at intake with the SMPP type of
    number: the canonical mobile number (``84327000686``) for any form of a
    Vietnamese mobile, else ``+`` and the international digits
    (``+376312345`` for TON 1 ``376312345``, ``+376312345`` or
    ``00376312345``), else ``#`` and the address as given. Every form of one
    phone gives one key, so a rate limit counts it once; a key that is not a
    Vietnamese mobile never reads as one (:func:`is_mobile_key` is False), so
    it can match no account. At most one character longer than ``addr``."""
    canonical = canonical_msisdn(addr, ton)
    if canonical is not None:
        return canonical
    cleaned = _clean(addr)
    if cleaned.startswith("+"):
        digits = cleaned[1:]
    elif cleaned.startswith("00"):
        digits = cleaned[2:]
    elif ton == _TON_INTERNATIONAL:
        digits = cleaned
    else:
        return _OTHER + addr
    if digits and _DIGITS.issuperset(digits):
        return _FOREIGN + digits
    return _OTHER + addr


def is_mobile_key(key: str) -> bool:
    """True when ``key`` (from :func:`sender_key`) is a Vietnamese mobile."""
    return canonical_msisdn(key) == key


def national_form(msisdn: str) -> str:
    """``0327000686`` for any form :func:`canonical_msisdn` accepts.

    Raises ValueError (without echoing the number) if it is not a mobile number.
    """
    canonical = canonical_msisdn(msisdn)
    if canonical is None:
        raise ValueError("not a Vietnamese mobile number")
    return "0" + canonical[len(_COUNTRY) :]


#: The longest all-digit address shown as it is (a short code).
_SHORT_CODE_MAX = 6
#: The longest alphanumeric originator GSM allows (3GPP TS 23.040).
_SENDER_NAME_MAX = 11
_SENDER_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ")
_MASK = "xxx"
#: How many trailing characters rule 5 keeps.
_KEPT = 3
#: What rule 5 gives at most: ``xxx`` and the kept characters.
_MASKED_OTHER_MAX = len(_MASK) + _KEPT


def _is_masked(value: str) -> bool:
    """Rule 2: ``0327xxx686``, or what rule 5 gives (``xxx`` + up to 3)."""
    if value.startswith(_MASK):
        return len(value) <= _MASKED_OTHER_MAX
    return (
        len(value) == 10
        and value.isascii()
        and value[0] == "0"
        and value[4:7] == _MASK
        and value[1:4].isdigit()
        and value[7:].isdigit()
    )


def _is_sender_name(value: str) -> bool:
    """Rule 4: up to 11 ASCII letters, digits and spaces, a letter, at most 6 digits."""
    return (
        len(value) <= _SENDER_NAME_MAX
        and _SENDER_NAME_CHARS.issuperset(value)
        and any(ch.isalpha() for ch in value)
        and sum(ch.isdigit() for ch in value) <= _SHORT_CODE_MAX
    )


def mask_msisdn(value: str) -> str:
    """What logs and operators may see of an address: ``0327xxx686`` for any
    form of a Vietnamese mobile, a short code (``8079``) or an alphanumeric
    sender name (``VIETTEL``) as it is, ``xxx`` and the last 3 characters of
    anything else (module docstring, *Masking*). Never raises; idempotent."""
    if not value or _is_masked(value):
        return value
    canonical = canonical_msisdn(value)
    if canonical is not None:
        national = "0" + canonical[len(_COUNTRY) :]
        return f"{national[:4]}{_MASK}{national[-3:]}"
    if len(value) <= _SHORT_CODE_MAX and _DIGITS.issuperset(value):
        return value
    if _is_sender_name(value):
        return value
    if len(value) <= _MASKED_OTHER_MAX:
        return _MASK
    return _MASK + value[-_KEPT:]
