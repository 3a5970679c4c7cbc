"""Client tokens: made once by ``smscd clients add``, stored only as a hash.

A token is 32 bytes from ``secrets`` (URL-safe base64, 43 characters). The
store keeps its SHA-256 hex digest: a token is random, not a password a person
chose, so nobody can search its 256-bit space and a slow hash (argon2) would
only cost time on every request.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["new_token", "token_hash"]

_TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
