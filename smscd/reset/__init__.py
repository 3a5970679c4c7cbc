"""The password-reset pipeline of shortcode 8079: parse, match, limit, reset, reply.

Plain synchronous functions over the ``ResetStore`` Protocol, which the pipeline
defines with its domain types (``_domain``) and ``smscd.store`` implements; no
SMPP, no SQL, no trio, no logging. See ``_pipeline`` for the theory of operation
and the security model, ``_parse`` for the accepted grammar.
"""

from __future__ import annotations

from smscd.reset._domain import (
    Account,
    ChargingMode,
    Decision,
    InboundMessage,
    InboundState,
    Outcome,
    ResetCounts,
    ResetStore,
)
from smscd.reset._parse import (
    SERVICES,
    BadSyntax,
    InvalidCode,
    ParsedMessage,
    ResetRequest,
    Service,
    parse_message,
)
from smscd.reset._password import PASSWORD_LENGTH, HashParams, PasswordHasher, new_password
from smscd.reset._phone import (
    OLD_PREFIXES,
    canonical_msisdn,
    is_mobile_key,
    mask_msisdn,
    national_form,
    sender_key,
)
from smscd.reset._pipeline import (
    NEXT,
    STEPS,
    Finish,
    Hasher,
    Next,
    Pipeline,
    Step,
    StepContext,
    StepResult,
    utc_now,
)
from smscd.reset._policy import VIETNAM_TZ, ResetPolicy, window_starts
from smscd.reset._templates import DEFAULT_TEXTS, MAX_SMS_CHARS, TemplateError, Templates

__all__ = [
    "DEFAULT_TEXTS",
    "MAX_SMS_CHARS",
    "NEXT",
    "OLD_PREFIXES",
    "PASSWORD_LENGTH",
    "SERVICES",
    "STEPS",
    "VIETNAM_TZ",
    "Account",
    "BadSyntax",
    "ChargingMode",
    "Decision",
    "Finish",
    "HashParams",
    "Hasher",
    "InboundMessage",
    "InboundState",
    "InvalidCode",
    "Next",
    "Outcome",
    "ParsedMessage",
    "PasswordHasher",
    "Pipeline",
    "ResetCounts",
    "ResetPolicy",
    "ResetRequest",
    "ResetStore",
    "Service",
    "Step",
    "StepContext",
    "StepResult",
    "TemplateError",
    "Templates",
    "canonical_msisdn",
    "is_mobile_key",
    "mask_msisdn",
    "national_form",
    "new_password",
    "parse_message",
    "sender_key",
    "utc_now",
    "window_starts",
]
