"""``POST /v1/resets``: the hotline's reset, through the pipeline of the 8079 MOs.

The app (``smscd.api.app``) has already authenticated the client, checked its
``resets`` scope, its rate and the body's size and content type; it puts the
client in ``request.state.client`` and the backend in
``request.app.state.backend``. Here the body is validated (pydantic) and the
backend asked.

Validation is of the form only; the pipeline judges the content, as it does an
MO's text:

* ``msisdn``: a string in any form of a Vietnamese mobile number
  (``0327000686``, ``84327000686``, ``+84 327 000 686``, the pre-2018
  ``01627...``), else 400;
* ``bhxh_code``: a string of at most ``MAX_CODE_CHARS`` characters, else
  400. The call is decided as the MO ``BH MK <code>`` would be, so the code is
  read as that MO's parser reads it (``0123 456 789`` is ``0123456789``), and
  anything but 10 digits is answered ``invalid_code`` and recorded, like that
  MO;
* ``channel``: one of ``CHANNELS``, else 400.

A missing field, a field of another JSON type, an unknown field or a body that
is not a JSON object is a 400 too. Every error is ``{"error": CODE, "detail":
TEXT}`` and names the field, never echoing its value. The answer is 200
``{"id": ..., "outcome": ...}``, with ``"password"`` only for ``reset_ok``; it
is ``Cache-Control: no-store``. If the backend fails, 503 and nothing was
changed. Nothing here logs the body or the password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator
from starlette.responses import JSONResponse

from smscd.api._backend import ResetCall
from smscd.api._schemas import field_error
from smscd.numbers import canonical_msisdn

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails
    from starlette.requests import Request
    from starlette.responses import Response

    from smscd.api._backend import ApiBackend, ApiClient

__all__ = ["CHANNELS", "MAX_CODE_CHARS", "ResetBody", "post_reset"]

log = structlog.get_logger("smscd.api")

#: Who may be named as the asker of a reset.
CHANNELS: Final = ("hotline", "app", "portal")
#: Longer than any code a subscriber types (10 digits, maybe in groups),
#: shorter than anything that is not one.
MAX_CODE_CHARS: Final = 64
#: Any form of a phone number, with its spaces, dashes and ``+``.
_MAX_MSISDN_CHARS: Final = 32
_NO_STORE: Final = {"cache-control": "no-store"}


class ResetBody(BaseModel):
    """The body of ``POST /v1/resets``; ``msisdn`` is canonical once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    msisdn: Annotated[StrictStr, Field(max_length=_MAX_MSISDN_CHARS)]
    bhxh_code: Annotated[StrictStr, Field(max_length=MAX_CODE_CHARS)]
    channel: Literal["hotline", "app", "portal"]

    @field_validator("msisdn")
    @classmethod
    def _vietnamese_mobile(cls, value: str) -> str:
        canonical = canonical_msisdn(value)
        if canonical is None:
            raise ValueError("not a Vietnamese mobile number")
        return canonical


def error_response(status: int, error: str, detail: str) -> Response:
    """A JSON error, as every error of the API is shaped."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=_NO_STORE)


def _field_error(error: ErrorDetails) -> tuple[str, str]:
    """The error code and the detail of one pydantic error, without its input:
    the API's (``field_error``), and the channels named."""
    if error["type"] == "literal_error":
        field = ".".join(str(part) for part in error["loc"])
        return "invalid_field", f"{field}: must be one of {', '.join(CHANNELS)}"
    return field_error(error)


def _answer(outcome: str, call_id: int, password: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": call_id, "outcome": outcome}
    if outcome == "reset_ok" and password is not None:
        body["password"] = password
    return body


async def post_reset(request: Request) -> Response:
    """``POST /v1/resets`` (see the module docstring)."""
    client: ApiClient = request.state.client
    backend: ApiBackend = request.app.state.backend
    raw = await request.body()
    try:
        body = ResetBody.model_validate_json(raw)
    except ValidationError as exc:
        error, detail = _field_error(exc.errors(include_input=False)[0])
        return error_response(400, error, detail)
    # The app's request line shows it, masked.
    request.state.msisdn = body.msisdn
    call = ResetCall(msisdn=body.msisdn, bhxh_code=body.bhxh_code, channel=body.channel)
    try:
        answer = await backend.reset(client, call)
    except Exception as exc:
        # The backend wrote nothing (one transaction); the caller may ask again.
        log.warning("api_reset_unavailable", client=client.name, error=type(exc).__name__)
        return error_response(
            503, "unavailable", "the reset could not be decided now; nothing was changed"
        )
    return JSONResponse(_answer(answer.outcome, answer.id, answer.password), headers=_NO_STORE)
