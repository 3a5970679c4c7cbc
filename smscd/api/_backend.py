"""What the API asks of the daemon: the :class:`ApiBackend` Protocol and its values.

The HTTP side validates every request at the edge and hands the backend only
these values; the backend (the daemon's API stage) answers with them. Nothing
here knows HTTP, SQL or the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "ApiBackend",
    "ApiClient",
    "ApiUnavailable",
    "MessageAccepted",
    "MessageRequest",
    "MessageStatus",
    "ResetAnswer",
    "ResetCall",
]


class ApiUnavailable(Exception):
    """The backend could not answer now (the store is down); nothing was
    written. The app answers 503."""


@attrs.frozen(kw_only=True)
class ApiClient:
    """A client of the API, as ``smscd clients add`` registered it (never its token)."""

    id: int
    name: str
    #: Any of ``"messages"``, ``"resets"``.
    scopes: frozenset[str]
    #: The sender id of its MTs (an alphanumeric brand name, TON 5, or a short
    #: code); None: the carrier's own source address.
    sender: str | None = None
    sender_ton: int = 0
    sender_npi: int = 0
    #: What one of its MTs is charged, in VND.
    price_vnd: int = 0
    #: Requests per second it may make (a token bucket of one second's burst).
    rate_per_s: float = 10.0
    #: Where each final state of its messages is POSTed, if anywhere.
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class MessageRequest:
    """A validated ``POST /v1/messages``: the text is already rendered, and
    fits one SMS (GSM-7, or UCS-2 when it is not GSM-7: the outbox picks the
    data_coding from the text)."""

    #: Canonical international form without ``+`` (``84327000686``).
    msisdn: str
    text: str = attrs.field(repr=False)
    client_ref: str


@attrs.frozen(kw_only=True)
class MessageAccepted:
    """The answer to a ``POST /v1/messages``, first or repeated."""

    id: int
    client_ref: str
    #: False when the same ``client_ref`` had already been accepted: the first
    #: answer, nothing queued again.
    created: bool


@attrs.frozen(kw_only=True)
class MessageStatus:
    """``GET /v1/messages/{id}``."""

    id: int
    client_ref: str
    msisdn: str
    #: The outbox state: queued, accepted, delivered, undeliverable, failed, expired.
    state: str
    carrier: str
    created_at: datetime
    accepted_at: datetime | None = None
    final_at: datetime | None = None
    #: The receipt's ``stat`` once one came (DELIVRD, UNDELIV, ...).
    receipt_stat: str | None = None


@attrs.frozen(kw_only=True)
class ResetCall:
    """A validated ``POST /v1/resets``."""

    #: Canonical international form without ``+``.
    msisdn: str
    bhxh_code: str
    #: Who asks, for the record: ``"hotline"``, ``"app"``, ...
    channel: str


@attrs.frozen(kw_only=True)
class ResetAnswer:
    """The pipeline's outcome for a ``POST /v1/resets``."""

    #: The inbound row recording the call.
    id: int
    #: An ``smscd.reset.Outcome`` value: reset_ok, mismatch, invalid_code,
    #: bad_syntax, rate_limited.
    outcome: str
    #: Only for reset_ok: the new password, to be read to the caller.
    password: str | None = attrs.field(default=None, repr=False)


class ApiBackend(Protocol):
    """The daemon, as the API sees it. Every method is async and contained:
    a failure of the store raises :class:`ApiUnavailable`, which the app maps
    to 503, never a traceback to the client."""

    async def authenticate(self, token: str) -> ApiClient | None:
        """The active client whose token this is, or None."""
        ...

    async def send_message(self, client: ApiClient, request: MessageRequest) -> MessageAccepted:
        """Commit the MT to the outbox (or find the one of the same
        ``client_ref``) and answer only once it is durable."""
        ...

    async def message_status(self, client: ApiClient, message_id: int) -> MessageStatus | None:
        """The state of one of this client's messages; None if it is not theirs."""
        ...

    async def reset(self, client: ApiClient, call: ResetCall) -> ResetAnswer:
        """Run the reset pipeline for the call, as for an 8079 MO, and commit
        its decision; the password is stored hashed, never returned twice."""
        ...
