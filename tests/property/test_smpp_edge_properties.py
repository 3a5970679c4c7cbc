"""Properties of the ESME's edge (STYLE S2): whatever PDU an SMSC sends -- a valid
one of any kind, a named hostile one, or either of them damaged -- a bound ESME
Connection yields events or raises RemoteProtocolError subclasses and nothing
else, whole, in chunks and byte by byte alike; every event it hands out meets
the edge limits; and a correctly framed PDU never costs the bind (the invariants
are spelled out in :mod:`tests.fuzz.invariants`, which ``make fuzz`` checks at
scale).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smscd.smpp import (
    MAX_ID_KEY_CHARS,
    MAX_MESSAGE_ID_OCTETS,
    IdFormat,
    message_id_keys,
    safe_message_id,
)
from tests.fuzz import fuzz_core
from tests.fuzz.__main__ import main as fuzz_main
from tests.fuzz.invariants import check_pdu
from tests.fuzz.mutate import mutate
from tests.strategies import message_id_strings, smsc_pdus

if TYPE_CHECKING:
    import random

    import pytest

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Byte-by-byte feeding costs one next_event() per octet: only for small PDUs.
BYTEWISE_MAX = 400


@SETTINGS
@given(smsc_pdus(), st.lists(st.integers(1, 70_000), max_size=3))
def test_any_smsc_pdu_meets_the_edge_invariants(raw: bytes, cuts: list[int]) -> None:
    result = check_pdu(raw, cuts=tuple(cuts), bytewise=len(raw) <= BYTEWISE_MAX)
    assert result.failures == ()


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_fuzz_mutator_s_pdus_meet_the_edge_invariants(rng: random.Random) -> None:
    raw = mutate(rng)
    result = check_pdu(raw, cuts=(rng.randrange(1, len(raw) + 2),), bytewise=len(raw) <= 200)
    assert result.failures == ()


def _safe(value: str, limit: int) -> bool:
    return len(value) <= limit and value.isascii() and value.isprintable()


@SETTINGS
@given(message_id_strings)
def test_message_id_keys_never_raise_and_fit_the_store(raw: str) -> None:
    for fmt in IdFormat:
        keys = message_id_keys(raw, fmt)
        assert keys
        assert all(_safe(key, MAX_ID_KEY_CHARS) for key in keys)
    safe = safe_message_id(raw)
    assert _safe(safe, MAX_MESSAGE_ID_OCTETS)
    assert safe_message_id(safe) == safe
    assert message_id_keys(safe) == message_id_keys(raw)  # made safe twice: same keys


@SETTINGS
@given(st.binary(max_size=200))
def test_safe_message_id_of_any_octets(raw: bytes) -> None:
    safe = safe_message_id(raw)
    assert _safe(safe, MAX_MESSAGE_ID_OCTETS)
    if len(raw) <= MAX_MESSAGE_ID_OCTETS and all(0x20 <= o <= 0x7E for o in raw):
        assert safe == raw.decode("ascii").strip(" ")  # printable ids pass, trimmed


def test_the_core_fuzzer_runs_bounded_and_reports() -> None:
    """``make fuzz`` in miniature: the named hostile PDUs and every fixture come
    first, the count bound holds, nothing fails."""
    lines: list[str] = []
    assert fuzz_core.run(cases=120, seconds=60.0, seed=1, out=lines) == 0
    assert "cases tried: 120" in lines
    assert "failed cases: 0" in lines
    refused = [line for line in lines if line.startswith("  PduRejected/ESME_RINVSRCADR: ")]
    assert refused  # the three named bad source_addr PDUs, at least


def test_the_fuzz_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz_main(["core", "--cases", "40", "--seconds", "30", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "cases tried: 40" in out
    assert "cases/s" in out
