"""The reset pipeline's decisions, through the in-memory store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from smscd.reset import (
    ChargingMode,
    Decision,
    HashParams,
    InboundState,
    Outcome,
    PasswordHasher,
    Pipeline,
    ResetPolicy,
    Templates,
)
from smscd.store import AlreadyDecided, StoreUnavailable
from tests.unit.reset_fakes import FakeResetStore

if TYPE_CHECKING:
    from collections.abc import Callable

CHEAP = HashParams(memory_kib=8, time_cost=1, parallelism=1)
HASHER = PasswordHasher(CHEAP)
POLICY = ResetPolicy(hash=CHEAP)
CODE = "0123456789"
PHONE = "84327000686"
OLD_PASSWORD = "999999"
OLD_HASH = HASHER.hash(OLD_PASSWORD)
NOW = datetime(2021, 10, 5, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi

RESET_OK_TEXT = re.compile(
    r"\ACap lai mat khau thanh cong\. Tai khoan: 0123456789/Mat khau: (?P<pw>[0-9]{6})\Z"
)
MISMATCH_TEXT = (
    "So dien thoai va ma so BHXH khong khop hoac chua dang ky giao dich dien tu voi co quan BHXH"
)
INVALID_CODE_TEXT = (
    "Ma so BHXH khong dung cau truc (phai gom 10 chu so). Soan tin: BH MK <Ma so BHXH> gui 8079"
)
BAD_SYNTAX_TEXT = (
    "Tin nhan sai cu phap. De lay lai mat khau VssID, soan tin: BH MK <Ma so BHXH> gui 8079"
)
RATE_LIMITED_TEXT = (
    "Ban da yeu cau cap lai mat khau qua so lan cho phep. Vui long thu lai sau hoac goi 1900.9068"
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_pipeline(now: datetime = NOW, policy: ResetPolicy = POLICY) -> Pipeline:
    return Pipeline(policy=policy, templates=Templates(), hasher=HASHER, clock=Clock(now))


def make_store(*, e_transaction: bool = True, phone: str = PHONE) -> FakeResetStore:
    store = FakeResetStore()
    store.add_account(CODE, phone, e_transaction=e_transaction, password_hash=OLD_HASH)
    return store


def run(
    store: FakeResetStore,
    text: str,
    *,
    source_addr: str = PHONE,
    ton: int = 1,
    pipeline: Pipeline | None = None,
) -> Decision:
    mo = store.receive(text, source_addr=source_addr, ton=ton)
    pipeline = pipeline or make_pipeline()
    return pipeline.process(mo, store, charging=ChargingMode.MO, charge_vnd=1000)


def assert_unchanged_account(store: FakeResetStore) -> None:
    account = store.accounts[CODE]
    assert account.password_hash == OLD_HASH
    assert account.must_change is False


def assert_one_commit(store: FakeResetStore, decision: Decision) -> None:
    assert store.decisions == [decision]
    assert [r.body for r in store.outbox] == [decision.reply_text]
    assert [(c.amount_vnd, c.charging) for c in store.charges] == [(1000, ChargingMode.MO)]
    (mo,) = store.inbound.values()
    assert mo.state is InboundState.DECIDED
    assert mo.outcome is decision.outcome


def test_reset_ok_changes_password_and_queues_it() -> None:
    store = make_store()
    decision = run(store, "BH MK 0123456789")
    assert decision.outcome is Outcome.RESET_OK
    found = RESET_OK_TEXT.match(decision.reply_text)
    assert found is not None
    password = found["pw"]
    account = store.accounts[CODE]
    assert account.password_hash == decision.password_hash
    assert account.password_hash is not None
    assert account.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert HASHER.verify(account.password_hash, password)
    assert not HASHER.verify(account.password_hash, OLD_PASSWORD)
    assert account.must_change is True
    assert decision.bhxh_code == CODE
    assert decision.decided_at == NOW
    assert password not in repr(decision)
    assert password not in account.password_hash
    assert store.calls == ["find_account", "reset_counts", "commit_decision"]
    assert_one_commit(store, decision)


@pytest.mark.parametrize(
    ("registered", "source_addr", "ton"),
    [
        ("84327000686", "0327000686", 0),
        ("84327000686", "+84327000686", 1),
        ("84327000686", "01627000686", 0),
        ("84327000686", "841627000686", 1),
        # A registration still in the pre-2018 form matches the new number.
        ("01627000686", "84327000686", 1),
        ("841627000686", "0327000686", 0),
    ],
)
def test_reset_ok_matches_every_form_of_the_number(
    registered: str, source_addr: str, ton: int
) -> None:
    store = make_store(phone=registered)
    decision = run(store, "bh mk 0123456789", source_addr=source_addr, ton=ton)
    assert decision.outcome is Outcome.RESET_OK


def mismatch_wrong_phone() -> FakeResetStore:
    return make_store(phone="84987654321")


def mismatch_unknown_code() -> FakeResetStore:
    store = FakeResetStore()
    store.add_account("9999999999", PHONE, password_hash=OLD_HASH)
    return store


def mismatch_not_e_transaction() -> FakeResetStore:
    return make_store(e_transaction=False)


MISMATCH_CASES = [mismatch_wrong_phone, mismatch_unknown_code, mismatch_not_e_transaction]


@pytest.mark.parametrize("make", MISMATCH_CASES)
def test_mismatch_changes_nothing(make: Callable[[], FakeResetStore]) -> None:
    store = make()
    before = dict(store.accounts)
    decision = run(store, "BH MK 0123456789")
    assert decision.outcome is Outcome.MISMATCH
    assert decision.reply_text == MISMATCH_TEXT
    assert decision.password_hash is None
    assert decision.bhxh_code == CODE
    assert store.accounts == before
    # One lookup, no rate-limit query: the same work in all three cases.
    assert store.calls == ["find_account", "commit_decision"]
    assert_one_commit(store, decision)


def test_mismatch_cases_are_indistinguishable() -> None:
    decisions = []
    calls = []
    for make in MISMATCH_CASES:
        store = make()
        decisions.append(run(store, "BH MK 0123456789"))
        calls.append(store.calls)
    replies = {d.reply_text.encode("ascii") for d in decisions}
    assert replies == {MISMATCH_TEXT.encode("ascii")}
    assert len({(d.outcome, d.bhxh_code, d.password_hash) for d in decisions}) == 1
    assert calls[0] == calls[1] == calls[2]


def test_sender_that_is_not_a_mobile_number_is_a_mismatch() -> None:
    store = make_store()
    decision = run(store, "BH MK 0123456789", source_addr="VIETTEL", ton=5)
    assert decision.outcome is Outcome.MISMATCH
    assert_unchanged_account(store)


def test_account_with_empty_phone_never_matches_an_unparseable_sender() -> None:
    store = make_store(phone="")
    decision = run(store, "BH MK 0123456789", source_addr="", ton=0)
    assert decision.outcome is Outcome.MISMATCH
    assert_unchanged_account(store)


@pytest.mark.parametrize(
    ("text", "outcome", "reply"),
    [
        ("BH MK 012345678", Outcome.INVALID_CODE, INVALID_CODE_TEXT),
        ("BH MK", Outcome.INVALID_CODE, INVALID_CODE_TEXT),
        ("xin chao", Outcome.BAD_SYNTAX, BAD_SYNTAX_TEXT),
        ("", Outcome.BAD_SYNTAX, BAD_SYNTAX_TEXT),
    ],
)
def test_help_replies_change_nothing(text: str, outcome: Outcome, reply: str) -> None:
    store = make_store()
    decision = run(store, text)
    assert decision.outcome is outcome
    assert decision.reply_text == reply
    assert decision.password_hash is None
    assert decision.bhxh_code is None
    assert store.calls == ["commit_decision"]
    assert_unchanged_account(store)
    assert_one_commit(store, decision)


def local(day: int, hour: int, month: int = 10) -> datetime:
    """A Hanoi wall-clock time as aware UTC."""
    return datetime(2021, month, day, hour, tzinfo=UTC) - timedelta(hours=7)


#: Twelve instants from 1 Oct 00:00 to 4 Oct 20:00, Hanoi time.
EARLIER_THIS_MONTH = [local(d, h) for d in range(1, 5) for h in (0, 12, 20)]


@pytest.mark.parametrize(
    ("msisdn", "code", "instants"),
    [
        # phone/day: three resets today by this phone, for other codes
        (PHONE, "1111111111", [local(5, 1), local(5, 2), local(5, 9)]),
        # code/day: three resets today of this code, from another phone
        ("84912345678", CODE, [local(5, 0), local(5, 2), local(5, 9)]),
        # phone/month: ten resets earlier this month, none today
        (PHONE, "1111111111", EARLIER_THIS_MONTH[:10]),
        # code/month
        ("84912345678", CODE, EARLIER_THIS_MONTH[:10]),
    ],
    ids=["phone-day", "code-day", "phone-month", "code-month"],
)
def test_rate_limited(msisdn: str, code: str, instants: list[datetime]) -> None:
    store = make_store()
    store.seed_resets(msisdn, code, *instants)
    decision = run(store, "BH MK 0123456789")
    assert decision.outcome is Outcome.RATE_LIMITED
    assert decision.reply_text == RATE_LIMITED_TEXT
    assert decision.password_hash is None
    assert store.calls == ["find_account", "reset_counts", "commit_decision"]
    assert_unchanged_account(store)
    assert_one_commit(store, decision)


@pytest.mark.parametrize(
    "instants",
    [
        [local(5, 1), local(5, 2)],  # two today: a third is allowed
        EARLIER_THIS_MONTH[:9],  # nine this month: a tenth is allowed
        [local(30, 12, month=9)] * 3,  # last month: another day and month
    ],
)
def test_under_the_limit_resets(instants: list[datetime]) -> None:
    store = make_store()
    store.seed_resets(PHONE, CODE, *instants)
    assert run(store, "BH MK 0123456789").outcome is Outcome.RESET_OK


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (datetime(2021, 10, 5, 16, 59, 59, tzinfo=UTC), Outcome.RATE_LIMITED),  # 23:59:59
        (datetime(2021, 10, 5, 17, 0, 0, tzinfo=UTC), Outcome.RESET_OK),  # 00:00 the 6th
    ],
)
def test_day_boundary_is_midnight_in_vietnam(now: datetime, outcome: Outcome) -> None:
    store = make_store()
    # 00:00, 08:00 and 23:00 on the 5th in Hanoi (the first is 17:00Z on the 4th).
    store.seed_resets(PHONE, CODE, local(5, 0), local(5, 8), local(5, 23))
    decision = run(store, "BH MK 0123456789", pipeline=make_pipeline(now))
    assert decision.outcome is outcome


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (datetime(2021, 9, 30, 16, 59, 59, tzinfo=UTC), Outcome.RATE_LIMITED),  # 30 Sep 23:59:59
        (datetime(2021, 9, 30, 17, 0, 0, tzinfo=UTC), Outcome.RESET_OK),  # 1 Oct 00:00
    ],
)
def test_month_boundary_is_the_first_in_vietnam(now: datetime, outcome: Outcome) -> None:
    store = make_store()
    # Ten resets from 1 Sep 00:00 (31 Aug 17:00Z) to 28 Sep in Hanoi, one a day.
    store.seed_resets(PHONE, CODE, *(local(d, 0, month=9) for d in range(1, 30, 3)))
    assert len(store.resets) == 10
    decision = run(store, "BH MK 0123456789", pipeline=make_pipeline(now))
    assert decision.outcome is outcome


def test_only_successful_resets_count() -> None:
    store = make_store()
    pipeline = make_pipeline()
    run(store, "BH MK 0123456789", source_addr="84987654321", pipeline=pipeline)  # mismatch
    outcomes = [run(store, "BH MK 0123456789", pipeline=pipeline).outcome for _ in range(5)]
    assert outcomes == [Outcome.RESET_OK] * 3 + [Outcome.RATE_LIMITED] * 2
    # The password in force is the one of the last successful reply.
    last_ok = [d for d in store.decisions if d.outcome is Outcome.RESET_OK][-1]
    found = RESET_OK_TEXT.match(last_ok.reply_text)
    assert found is not None
    stored = store.accounts[CODE].password_hash
    assert stored is not None
    assert HASHER.verify(stored, found["pw"])
    assert len(store.outbox) == 6
    assert len(store.charges) == 6


def test_failed_commit_changes_nothing_and_propagates() -> None:
    store = make_store()
    store.fail_commit_after_password_update = True
    mo = store.receive("BH MK 0123456789")
    pipeline = make_pipeline()
    with pytest.raises(StoreUnavailable):
        pipeline.process(mo, store, charging=ChargingMode.MO, charge_vnd=1000)
    assert_unchanged_account(store)
    assert store.outbox == []
    assert store.charges == []
    assert store.decisions == []
    assert store.inbound[mo.id].state is InboundState.RECEIVED
    # The retry after the outage succeeds, with a fresh password.
    store.fail_commit_after_password_update = False
    decision = pipeline.process(mo, store, charging=ChargingMode.MO, charge_vnd=1000)
    assert decision.outcome is Outcome.RESET_OK
    assert_one_commit(store, decision)


def test_a_decided_mo_is_not_answered_twice() -> None:
    store = make_store()
    mo = store.receive("BH MK 0123456789")
    pipeline = make_pipeline()
    first = pipeline.process(mo, store, charging=ChargingMode.MO, charge_vnd=1000)
    with pytest.raises(AlreadyDecided):
        pipeline.process(mo, store, charging=ChargingMode.MO, charge_vnd=1000)
    assert_one_commit(store, first)
    assert store.accounts[CODE].password_hash == first.password_hash


def test_decide_commits_nothing() -> None:
    store = make_store()
    mo = store.receive("BH MK 0123456789")
    decision = make_pipeline().decide(mo, store, charging=ChargingMode.MT, charge_vnd=500)
    assert decision.outcome is Outcome.RESET_OK
    assert decision.charging is ChargingMode.MT
    assert decision.charge_vnd == 500
    assert decision.inbound_id == mo.id
    assert "commit_decision" not in store.calls
    assert store.outbox == []
    assert_unchanged_account(store)


def test_reload_swaps_texts_limits_and_hash_cost() -> None:
    store = make_store()
    store.seed_resets(PHONE, CODE, local(5, 1))
    pipeline = make_pipeline()
    cost = HashParams(memory_kib=16, time_cost=1, parallelism=1)
    strict = ResetPolicy(rate_limit_per_day=1, rate_limit_per_month=1, hash=cost)
    texts = Templates.from_mapping({"rate_limited": "Qua so lan. Goi 1900.9068"})
    pipeline.reload(strict, texts)
    decision = run(store, "BH MK 0123456789", pipeline=pipeline)
    assert decision.outcome is Outcome.RATE_LIMITED
    assert decision.reply_text == "Qua so lan. Goi 1900.9068"
    assert isinstance(pipeline.hasher, PasswordHasher)
    assert pipeline.hasher.params == cost
    pipeline.reload(ResetPolicy(hash=cost), texts)
    decision = run(store, "BH MK 0123456789", pipeline=pipeline)
    assert decision.password_hash is not None
    assert decision.password_hash.startswith("$argon2id$v=19$m=16,t=1,p=1$")


class PlainHasher:
    """A no-cost Hasher, as a benchmark would pass."""

    def hash(self, password: str) -> str:
        return f"plain${password}"


def test_any_hasher_protocol_will_do() -> None:
    store = make_store()
    pipeline = Pipeline(
        policy=POLICY, templates=Templates(), hasher=PlainHasher(), clock=Clock(NOW)
    )
    pipeline.reload(ResetPolicy(), Templates())  # keeps an injected hasher
    decision = run(store, "BH MK 0123456789", pipeline=pipeline)
    found = RESET_OK_TEXT.match(decision.reply_text)
    assert found is not None
    assert decision.password_hash == f"plain${found['pw']}"
    assert isinstance(pipeline.hasher, PlainHasher)


def test_naive_clock_is_refused() -> None:
    store = make_store()
    pipeline = make_pipeline(now=datetime(2021, 10, 5, 3, 0))
    mo = store.receive("BH MK 0123456789")
    with pytest.raises(ValueError, match="aware"):
        pipeline.decide(mo, store, charging=ChargingMode.MO, charge_vnd=1000)


def test_default_clock_is_aware_utc() -> None:
    pipeline = Pipeline(policy=POLICY, templates=Templates(), hasher=PlainHasher())
    assert pipeline.clock().utcoffset() == timedelta(0)


#: One Andorran number (+376 312 345) in every form an SMSC may give it. Its
#: digits are also those of the Vietnamese mobile 0376312345 once a trunk
#: zero is put in front: none of these forms may read as that phone.
FOREIGN_FORMS = (
    ("376312345", 1),
    ("+376312345", 1),
    ("+376312345", 0),
    ("00376312345", 0),
    ("00376312345", 1),
)


@pytest.mark.parametrize(("source_addr", "ton"), FOREIGN_FORMS)
def test_a_foreign_number_never_resets_the_account_its_digits_resemble(
    source_addr: str, ton: int
) -> None:
    store = make_store(phone="0376312345")
    decision = run(store, "BH MK 0123456789", source_addr=source_addr, ton=ton)
    assert decision.outcome is Outcome.MISMATCH
    assert decision.reply_text == MISMATCH_TEXT
    assert decision.password_hash is None
    assert store.accounts[CODE].password_hash == OLD_HASH


@pytest.mark.parametrize(
    ("source_addr", "ton"),
    [("84376312345", 1), ("0376312345", 0), ("+84376312345", 1), ("376312345", 0)],
)
def test_the_registered_phone_in_any_vietnamese_form_still_resets(
    source_addr: str, ton: int
) -> None:
    store = make_store(phone="0376312345")
    decision = run(store, "BH MK 0123456789", source_addr=source_addr, ton=ton)
    assert decision.outcome is Outcome.RESET_OK


def test_every_form_of_one_phone_shares_its_rate_limit() -> None:
    policy = ResetPolicy(hash=CHEAP, rate_limit_per_day=3)
    store = make_store()
    pipeline = make_pipeline(policy=policy)
    outcomes = [
        run(store, "BH MK 0123456789", source_addr=addr, ton=ton, pipeline=pipeline).outcome
        for addr, ton in [
            ("84327000686", 1),
            ("0327000686", 0),
            ("+84327000686", 1),
            ("01627000686", 0),
        ]
    ]
    assert outcomes == [Outcome.RESET_OK] * 3 + [Outcome.RATE_LIMITED]
