"""smscd.api: the internal HTTP API for the app, portal and hotline channels.

``POST /v1/messages`` queues an MT for an internal client through the carrier
binds; ``GET /v1/messages/{id}`` gives its state; ``POST /v1/resets`` runs the
reset pipeline for the hotline and answers the outcome. The daemon implements
:class:`ApiBackend`; this package imports neither the daemon nor the store.
The app itself is ``smscd.api.app`` (Starlette, pydantic), served by a process
of its own, ``smscd.api.front``, whose backend is the daemon across a
socketpair (``smscd.api._remote``). The package holds only the values and
tokens the store and the command line use, so that they load no HTTP stack.
"""

from __future__ import annotations

from smscd.api._backend import (
    ApiBackend,
    ApiClient,
    ApiUnavailable,
    MessageAccepted,
    MessageRequest,
    MessageStatus,
    ResetAnswer,
    ResetCall,
)
from smscd.api._tokens import new_token, token_hash

__all__ = [
    "ApiBackend",
    "ApiClient",
    "ApiUnavailable",
    "MessageAccepted",
    "MessageRequest",
    "MessageStatus",
    "ResetAnswer",
    "ResetCall",
    "new_token",
    "token_hash",
]
