"""Properties of the reset pipeline over made-up input (hypothesis)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from smscd.reset import (
    BadSyntax,
    ChargingMode,
    InvalidCode,
    Outcome,
    Pipeline,
    ResetPolicy,
    ResetRequest,
    TemplateError,
    Templates,
    canonical_msisdn,
    mask_msisdn,
    national_form,
    parse_message,
)
from tests.unit.reset_fakes import FakeResetStore

SETTINGS = settings(max_examples=200, deadline=None)
CANONICAL = re.compile(r"\A84[35789][0-9]{8}\Z")

codes = st.text(alphabet="0123456789", min_size=10, max_size=10)
separators = st.text(
    alphabet=" \t\n\u00a0\u3000.,:;-_/'\"!?()<>#*+=|~^\u201c\u201d\u2013\u200b", max_size=3
)
nonempty_separators = separators.filter(bool)
#: Text that looks like what subscribers send: the letters, digits and
#: separators the parser cares about, plus a few that it must refuse.
near_misses = st.text(
    alphabet="BHMKbhmkX0123456789 .-:\t\n\u00a0\u0124\u0110\u00df\u017f\uff22\uff10\u0663\u0302"
)


def case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in word)).map("".join)


@st.composite
def decorated_requests(draw: st.DrawFn) -> tuple[str, str]:
    """A well-formed request in any accepted spelling, and its code."""
    code = draw(codes)
    groups: list[str] = []
    rest = code
    while rest:
        size = draw(st.integers(min_value=1, max_value=len(rest)))
        groups.append(rest[:size])
        rest = rest[size:]
    digits = "".join(g + draw(nonempty_separators) for g in groups[:-1]) + groups[-1]
    comment = draw(st.sampled_from(["", " cam on", ". Cam on!", " c\u1ea3m \u01a1n", " :)"]))
    text = (
        draw(separators)
        + draw(case("BH"))
        + draw(separators)
        + draw(case("MK"))
        + draw(separators)
        + digits
        + comment
        + draw(separators)
    )
    return text, code


@SETTINGS
@given(st.text())
def test_parse_never_raises_on_any_text(text: str) -> None:
    result = parse_message(text)
    assert isinstance(result, ResetRequest | InvalidCode | BadSyntax)
    if isinstance(result, ResetRequest):
        assert re.fullmatch(r"[0-9]{10}", result.code)


@SETTINGS
@given(near_misses)
def test_parse_never_raises_on_near_misses(text: str) -> None:
    result = parse_message(text)
    assert isinstance(result, ResetRequest | InvalidCode | BadSyntax)
    if isinstance(result, ResetRequest):
        assert re.fullmatch(r"[0-9]{10}", result.code)


@SETTINGS
@given(decorated_requests())
def test_every_accepted_spelling_gives_the_code(sample: tuple[str, str]) -> None:
    text, code = sample
    assert parse_message(text) == ResetRequest(code=code)


@SETTINGS
@given(codes, st.integers(min_value=0, max_value=10), st.sampled_from("0123456789X"))
def test_one_character_more_is_an_invalid_code(code: str, at: int, extra: str) -> None:
    mangled = code[:at] + extra + code[at:]
    assert isinstance(parse_message(f"BH MK {mangled}"), InvalidCode)
    assert isinstance(parse_message(f"BH MK {code[1:]}"), InvalidCode)


@SETTINGS
@given(st.one_of(st.text(), near_misses, decorated_requests().map(lambda sample: sample[0])))
def test_pipeline_on_any_text_gives_one_of_five_outcomes(text: str) -> None:
    store = FakeResetStore()
    store.add_account("0123456789", "84327000686")
    mo = store.receive(text)
    pipeline = Pipeline(
        policy=ResetPolicy(),
        templates=Templates(),
        hasher=PlainHasher(),
        clock=lambda: datetime(2021, 10, 5, 3, 0, tzinfo=UTC),
    )
    decision = pipeline.process(mo, store, charging=ChargingMode.MO, charge_vnd=1000)
    assert decision.outcome in set(Outcome)
    assert (decision.password_hash is not None) == (decision.outcome is Outcome.RESET_OK)
    assert decision.reply_text.isascii()
    assert len(decision.reply_text) <= 160
    assert len(store.decisions) == 1
    assert len(store.outbox) == 1


class PlainHasher:
    def hash(self, password: str) -> str:
        return f"plain${password}"


@SETTINGS
@given(st.text(), st.one_of(st.none(), st.integers(min_value=0, max_value=6)))
def test_canonical_msisdn_never_raises_and_is_idempotent(text: str, ton: int | None) -> None:
    canonical = canonical_msisdn(text, ton)
    assert canonical is None or CANONICAL.match(canonical)
    if canonical is not None:
        assert canonical_msisdn(canonical) == canonical
        assert canonical_msisdn(national_form(canonical)) == canonical
        assert re.fullmatch(r"0[0-9]{3}xxx[0-9]{3}", mask_msisdn(text))
    masked = mask_msisdn(text)
    assert len(masked) <= max(len(text), 10)


@SETTINGS
@given(st.text(alphabet="0123456789+ -", max_size=16), st.sampled_from([None, 0, 1, 2]))
def test_canonical_msisdn_on_digit_soup(text: str, ton: int | None) -> None:
    canonical = canonical_msisdn(text, ton)
    assert canonical is None or CANONICAL.match(canonical)


@SETTINGS
@given(st.text(max_size=200))
def test_a_template_is_accepted_or_refused_by_name(text: str) -> None:
    error: TemplateError | None = None
    try:
        templates = Templates.from_mapping({"mismatch": text})
    except TemplateError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith("templates.mismatch: ")
    else:
        assert templates.mismatch == text
        assert text.isascii()
        assert len(text) <= 160
