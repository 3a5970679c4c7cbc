"""The five reply texts, their defaults and the checks an override must pass.

Theory of operation
-------------------
Every reply is one SMS in GSM-7 (data_coding 0), so a text is checked once, at
start-up or on SIGHUP, never at send time:

* ASCII only (the service's published texts are Vietnamese without diacritics);
* printable, or a line feed;
* exactly the right placeholders: ``reset_ok`` holds ``{code}`` and
  ``{password}``, the others none;
* outside the placeholders, only characters GSM 03.38 and ASCII encode alike
  (``smscd.gsm7.first_not_ascii_alike``), so the reply reads the same on an
  SMSC that takes data_coding 0 as ASCII: none of ``@ _ $`` (elsewhere in the
  GSM-7 alphabet), ```` ` ```` (not in it) or ``{ } [ ] ~ ^ \\ |`` (extension
  characters, two septets each);
* at most 160 septets once filled with a 10-digit code and a 6-digit password
  (``smscd.gsm7.septets``; every allowed character is one septet).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, assert_never

import attrs

from smscd.gsm7 import first_not_ascii_alike, septets
from smscd.reset._domain import Outcome

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_TEXTS", "MAX_SMS_CHARS", "TemplateError", "Templates"]

#: One GSM-7 SMS without concatenation.
MAX_SMS_CHARS = 160

#: The texts of DESIGN.md, byte for byte.
DEFAULT_TEXTS: Mapping[str, str] = {
    "reset_ok": "Cap lai mat khau thanh cong. Tai khoan: {code}/Mat khau: {password}",
    "mismatch": (
        "So dien thoai va ma so BHXH khong khop hoac chua dang ky giao dich dien tu"
        " voi co quan BHXH"
    ),
    "invalid_code": (
        "Ma so BHXH khong dung cau truc (phai gom 10 chu so). Soan tin: BH MK <Ma so BHXH> gui 8079"
    ),
    "bad_syntax": (
        "Tin nhan sai cu phap. De lay lai mat khau VssID, soan tin: BH MK <Ma so BHXH> gui 8079"
    ),
    "rate_limited": (
        "Ban da yeu cau cap lai mat khau qua so lan cho phep. Vui long thu lai sau hoac goi"
        " 1900.9068"
    ),
}

_PLACEHOLDERS: Mapping[str, tuple[str, ...]] = {
    "reset_ok": ("code", "password"),
    "mismatch": (),
    "invalid_code": (),
    "bad_syntax": (),
    "rate_limited": (),
}
#: What the length check fills the placeholders with.
_SAMPLE = {"code": "0" * 10, "password": "0" * 6}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")


class TemplateError(ValueError):
    """A reply text that would not make one clean SMS; the message names the key."""


def _key_path(source: str, key: str) -> str:
    table = source[1:-1] if source.startswith("[") and source.endswith("]") else source
    return f"{table}.{key}"


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _problem(key: str, value: object) -> str | None:
    """What is wrong with ``value`` as the text of ``key``, or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value.strip():
        return "must not be empty"
    for position, ch in enumerate(value):
        if not ch.isascii():
            return f"must be ASCII (found {ch!r} at position {position})"
        if not (ch.isprintable() or ch == "\n"):
            return f"must not contain the control character {ch!r}"
    expected = _PLACEHOLDERS[key]
    found = set(_PLACEHOLDER.findall(value))
    for name in expected:
        if name not in found:
            return f"must contain {{{name}}}"
    unexpected = sorted(found - set(expected))
    if unexpected:
        return f"must not contain {{{unexpected[0]}}}"
    bare = _PLACEHOLDER.sub("", value)
    unsafe = first_not_ascii_alike(bare)
    if unsafe is not None:
        return f"must not contain {bare[unsafe]!r} (not safe in GSM-7)"
    length = septets(_fill(value, _SAMPLE))
    if length > MAX_SMS_CHARS:
        return f"must be at most {MAX_SMS_CHARS} characters once filled (is {length})"
    return None


def _check(source: str, key: str, value: object) -> None:
    problem = _problem(key, value)
    if problem is not None:
        raise TemplateError(f"{_key_path(source, key)}: {problem}")


@attrs.frozen(kw_only=True)
class Templates:
    """The reply texts. Every instance is valid: construction checks each field."""

    reset_ok: str = DEFAULT_TEXTS["reset_ok"]
    mismatch: str = DEFAULT_TEXTS["mismatch"]
    invalid_code: str = DEFAULT_TEXTS["invalid_code"]
    bad_syntax: str = DEFAULT_TEXTS["bad_syntax"]
    rate_limited: str = DEFAULT_TEXTS["rate_limited"]

    def __attrs_post_init__(self) -> None:
        for key in _PLACEHOLDERS:
            _check("[templates]", key, getattr(self, key))

    @classmethod
    def from_mapping(
        cls, overrides: Mapping[str, object], *, source: str = "[templates]"
    ) -> Templates:
        """The defaults with ``overrides`` (a ``[templates]`` table) applied.

        Raises TemplateError naming ``<table>.<key>`` (``templates.reset_ok: must
        contain {password}``); ``source`` is the table as written in the config
        (``[templates]``) or any prefix the caller prefers.
        """
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in _PLACEHOLDERS:
                known = ", ".join(sorted(_PLACEHOLDERS))
                raise TemplateError(f"{_key_path(source, str(key))}: unknown key (known: {known})")
            _check(source, key, value)
            values[key] = value
        return cls(**values)

    def text(self, outcome: Outcome) -> str:
        """The unfilled text for ``outcome``."""
        match outcome:
            case Outcome.RESET_OK:
                return self.reset_ok
            case Outcome.MISMATCH:
                return self.mismatch
            case Outcome.INVALID_CODE:
                return self.invalid_code
            case Outcome.BAD_SYNTAX:
                return self.bad_syntax
            case Outcome.RATE_LIMITED:
                return self.rate_limited
            case _:
                assert_never(outcome)

    def render(self, outcome: Outcome, *, code: str | None, password: str | None) -> str:
        """The reply for ``outcome``. RESET_OK needs ``code`` and ``password``
        (ValueError otherwise); the other texts take no values and ignore them."""
        text = self.text(outcome)
        if outcome is not Outcome.RESET_OK:
            return text
        if code is None or password is None:
            raise ValueError("reset_ok needs a code and a password")
        return _fill(text, {"code": code, "password": password})
