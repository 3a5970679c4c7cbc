"""What a reply body may keep at rest."""

from __future__ import annotations

import re

__all__ = ["mask_body"]

_PASSWORD_AFTER_LABEL = re.compile(r"(Mat khau: *)\S+")
_SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")


def mask_body(body: str) -> str:
    """The reply as it may stay at rest: no password in it.

    The word after ``Mat khau:`` goes, and (should an operator's template put
    the password elsewhere) so does any free-standing run of exactly six digits;
    the 10-digit code, being longer, stays.
    """
    masked = _PASSWORD_AFTER_LABEL.sub(lambda m: m.group(1) + "******", body)
    return _SIX_DIGITS.sub("******", masked)
