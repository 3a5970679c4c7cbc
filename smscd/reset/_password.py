"""New passwords and their argon2id hashes.

Hashing is deliberately expensive (about 19 MiB of memory and tens of
milliseconds of CPU per call) and blocking: the pipeline is synchronous and the
daemon runs it in a worker thread (``trio.to_thread.run_sync`` with a limiter of
about one thread per core), never on the event loop.
"""

from __future__ import annotations

import secrets

import argon2
import argon2.exceptions
import attrs

__all__ = ["PASSWORD_LENGTH", "HashParams", "PasswordHasher", "new_password"]

#: Digits in a new password.
PASSWORD_LENGTH = 6


def new_password() -> str:
    """Six digits from ``secrets`` (uniform over 000000..999999, leading zeros kept)."""
    return f"{secrets.randbelow(10**PASSWORD_LENGTH):0{PASSWORD_LENGTH}d}"


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name}: must be a positive integer")


@attrs.frozen(kw_only=True)
class HashParams:
    """argon2id cost; the defaults are OWASP's minimum (19 MiB, t=2, p=1)."""

    memory_kib: int = attrs.field(default=19456, validator=_positive)
    time_cost: int = attrs.field(default=2, validator=_positive)
    parallelism: int = attrs.field(default=1, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("memory_kib: must be at least 8 times parallelism")


class PasswordHasher:
    """argon2id over argon2-cffi. Both methods block (see the module docstring)."""

    def __init__(self, params: HashParams = HashParams()) -> None:
        self.params = params
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        """The encoded hash (``$argon2id$v=19$m=19456,t=2,p=1$…``); blocks."""
        return self._hasher.hash(password)

    def verify(self, hash: str, password: str) -> bool:
        """Whether ``password`` matches ``hash``; False for a malformed hash; blocks."""
        try:
            return self._hasher.verify(hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False
