"""New passwords and argon2id hashing."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from smscd.reset import PASSWORD_LENGTH, HashParams, PasswordHasher, new_password

if TYPE_CHECKING:
    import pytest

CHEAP = HashParams(memory_kib=8, time_cost=1, parallelism=1)


def test_new_password_is_six_digits() -> None:
    passwords = {new_password() for _ in range(200)}
    assert PASSWORD_LENGTH == 6
    assert all(len(p) == 6 and p.isascii() and p.isdigit() for p in passwords)
    assert len(passwords) > 190  # 200 draws from a million: collisions are rare


def test_new_password_is_uniform_over_a_million_and_keeps_leading_zeros(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []

    def randbelow(n: int) -> int:
        asked.append(n)
        return 42

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    assert new_password() == "000042"
    assert asked == [1_000_000]


def test_default_params_are_owasp_argon2id() -> None:
    hasher = PasswordHasher()
    assert hasher.params == HashParams(memory_kib=19456, time_cost=2, parallelism=1)
    encoded = hasher.hash("012345")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(encoded, "012345")


def test_hash_and_verify() -> None:
    hasher = PasswordHasher(CHEAP)
    encoded = hasher.hash("000042")
    assert encoded.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert "000042" not in encoded
    assert hasher.hash("000042") != encoded  # salted
    assert hasher.verify(encoded, "000042")
    assert not hasher.verify(encoded, "000043")
    assert not hasher.verify("not a hash", "000042")
    assert not hasher.verify("", "000042")
