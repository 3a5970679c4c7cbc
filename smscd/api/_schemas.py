"""The request bodies of the API as pydantic models, and the JSON errors
their validation errors become.

Validation is of the form (types, lengths, unknown fields) and of what can be
checked without the daemon: ``to`` must be a Vietnamese mobile number in any
form (it is canonical, ``84327000686``, once validated); ``text`` or
``template`` (with its ``params``), not both. The app fills the template and
checks the text fits one SMS (``fit_text``). Errors name the field and never
echo its value.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Annotated, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from smscd.gsm7 import is_gsm7, septets
from smscd.numbers import canonical_msisdn

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic_core import ErrorDetails

__all__ = [
    "MAX_GSM7_SEPTETS",
    "MAX_UCS2_UNITS",
    "MessageBody",
    "TextProblem",
    "field_error",
    "fill_template",
    "fit_text",
]

#: One SMS: 160 GSM-7 septets, or 70 UCS-2 code units (the link sends no
#: concatenated MTs).
MAX_GSM7_SEPTETS: Final = 160
MAX_UCS2_UNITS: Final = 70
_MAX_MSISDN_CHARS: Final = 32
_MAX_TEXT_CHARS: Final = 1000
_MAX_PARAMS: Final = 16
_MAX_PARAM_CHARS: Final = 64


class TextProblem(ValueError):
    """A text or template that cannot be sent: ``(error code, detail)``."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


_Param = StrictStr | StrictInt


class MessageBody(BaseModel):
    """The body of ``POST /v1/messages``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: Annotated[StrictStr, Field(max_length=_MAX_MSISDN_CHARS)]
    text: Annotated[StrictStr, Field(min_length=1, max_length=_MAX_TEXT_CHARS)] | None = None
    template: Annotated[StrictStr, Field(min_length=1, max_length=32)] | None = None
    params: Annotated[dict[StrictStr, _Param], Field(max_length=_MAX_PARAMS)] | None = None
    #: The client's own id of the message: the same one again is the same message.
    client_ref: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]

    @field_validator("to")
    @classmethod
    def _vietnamese_mobile(cls, value: str) -> str:
        canonical = canonical_msisdn(value)
        if canonical is None:
            raise ValueError("not a Vietnamese mobile number")
        return canonical

    @field_validator("text")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and any(
            (ch < " " and ch not in "\r\n") or ch == "\x7f" for ch in value
        ):
            raise ValueError("no control characters but line breaks")
        return value

    @model_validator(mode="after")
    def _text_or_template(self) -> MessageBody:
        if (self.text is None) == (self.template is None):
            raise ValueError("give either text or template (with params), not both")
        if self.params is not None and self.template is None:
            raise ValueError("params go with a template")
        return self


def fill_template(text: str, params: Mapping[str, str | int]) -> str:
    """``text`` with its ``{name}`` placeholders filled from ``params``;
    TextProblem for a missing or unused parameter, or a bad value."""
    fields = {field for _lit, field, _spec, _conv in string.Formatter().parse(text) if field}
    for name in sorted(fields):
        if name not in params:
            raise TextProblem("missing_field", f"params.{name}: required by the template")
    for name, value in sorted(params.items()):
        if name not in fields:
            raise TextProblem("unknown_field", f"params.{name}: not a parameter of the template")
        shown = str(value)
        if len(shown) > _MAX_PARAM_CHARS or not shown.isprintable():
            raise TextProblem(
                "invalid_field",
                f"params.{name}: at most {_MAX_PARAM_CHARS} printable characters",
            )
    return text.format_map({name: str(value) for name, value in params.items()})


def fit_text(text: str) -> int:
    """The data_coding ``text`` goes with (0: GSM-7, 8: UCS-2) if it fits one
    SMS; TextProblem if it does not."""
    if is_gsm7(text):
        if septets(text) > MAX_GSM7_SEPTETS:
            raise TextProblem(
                "text_too_long", f"text: more than {MAX_GSM7_SEPTETS} GSM-7 characters"
            )
        return 0
    units = len(text.encode("utf-16-be")) // 2
    if units > MAX_UCS2_UNITS:
        raise TextProblem(
            "text_too_long",
            f"text: not GSM-7, so sent as UCS-2: more than {MAX_UCS2_UNITS} characters",
        )
    return 8


def field_error(error: ErrorDetails) -> tuple[str, str]:
    """The error code and the detail of one pydantic error, without its input
    (codes as ``smscd.api._resets`` names them)."""
    field = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "json_invalid":
        return "invalid_json", "the body is not valid JSON"
    if kind == "model_type":
        return "invalid_json", "the body must be a JSON object"
    if kind == "missing":
        return "missing_field", f"{field}: required"
    if kind == "extra_forbidden":
        return "unknown_field", f"{field}: not a field of this request"
    if kind in ("string_type", "int_type"):
        return "invalid_field", f"{field}: must be a string"
    if kind in ("string_too_long", "too_long"):
        return "invalid_field", f"{field}: too long (at most {ctx.get('max_length')})"
    if kind in ("string_too_short", "too_short"):
        return "invalid_field", f"{field}: must not be empty"
    if kind == "string_pattern_mismatch":
        return "invalid_field", f"{field}: printable ASCII without spaces"
    if kind == "value_error":
        reason = str(ctx.get("error", "invalid"))
        return "invalid_field", f"{field}: {reason}" if field else reason
    return "invalid_field", f"{field}: invalid" if field else "invalid"
