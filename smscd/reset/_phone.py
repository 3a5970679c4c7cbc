"""The pipeline's view of phone numbers: the numbering functions of the leaf
module ``smscd.numbers`` (canonical form, 2018 conversion, sender keys,
masking), which the link and the logging processor share."""

from __future__ import annotations

from smscd.numbers import (
    OLD_PREFIXES,
    canonical_msisdn,
    is_mobile_key,
    mask_msisdn,
    national_form,
    sender_key,
)

__all__ = [
    "OLD_PREFIXES",
    "canonical_msisdn",
    "is_mobile_key",
    "mask_msisdn",
    "national_form",
    "sender_key",
]
