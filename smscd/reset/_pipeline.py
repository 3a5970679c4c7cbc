"""The reset pipeline: from one stored MO to one Decision.

Theory of operation
-------------------
The pipeline is a tuple of ordered synchronous steps ``(ctx, store) ->
StepResult`` (STYLE L8). A step reads and fills the mutable ``StepContext`` and
returns ``NEXT`` to go on or ``Finish(outcome)`` to end the chain:

1. ``parse``: the text -> ``BAD_SYNTAX`` / ``INVALID_CODE``, or the code;
2. ``look_up``: ``store.find_account(code)`` (one lookup, whatever the code);
3. ``match_sender``: the sender's canonical number against the registered one,
   in constant time, and the e-transaction flag -> ``MISMATCH``;
4. ``rate_limit``: successful resets of this phone and of this code since the
   start of the local day and month -> ``RATE_LIMITED``;
5. ``set_new_password``: six digits from ``secrets`` and their argon2id hash ->
   ``RESET_OK``.

Then the outcome's text is rendered and everything goes into one ``Decision``.
``decide`` commits nothing; ``process`` hands the Decision to
``store.commit_decision``, which writes in ONE transaction the MO's outcome, the
new password hash with its must-change flag, the queued reply and the charge: if
it raises, nothing was written, the exception propagates, and the MO stays
RECEIVED for a retry (which draws a fresh password). The plaintext password
exists only in ``Decision.reply_text``; ``Decision.password_hash`` is set if and
only if the outcome is RESET_OK.

Everything here blocks (the store, and argon2id by design): the daemon calls
``process`` in a worker thread. Nothing here logs; the daemon logs the outcome.

Security model
--------------
The carrier vouches for the sender's number; nothing else in an MO is trusted.
An attacker who knows someone's code can text ``BH MK <code>`` from their own
phone. For them three cases must be indistinguishable: the code exists but the
phone is not theirs, the code does not exist, the account is not registered for
e-transactions. So:

* the same steps run in all three: one ``find_account`` (no shortcut skips the
  lookup for a code that "looks" unknown), then one ``hmac.compare_digest`` of
  the sender against the registered phone, or against a dummy phone that no
  canonical number can equal when the account is missing, and the three
  conditions are combined without short-circuit;
* all three end with the same ``MISMATCH`` text, byte for byte, and the same
  commit (outcome, reply, charge; no password change);
* the expensive work that could be timed, the rate-limit count and the argon2id
  hash, runs only after a match, i.e. only for the phone that owns the code. So
  ``RATE_LIMITED`` is only ever said to the owner and tells a stranger nothing.

Rate limits count successful resets (RESET_OK) in Vietnam-time days and months,
per phone and per code; each costs the agency an SMS and the subscriber 1,000
VND, and the single numbers seen resetting 43-47 times a month are what they
bound.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias, assert_never

import attrs

from smscd.reset._domain import (
    Account,
    ChargingMode,
    Decision,
    InboundMessage,
    Outcome,
    ResetStore,
)
from smscd.reset._parse import BadSyntax, InvalidCode, ResetRequest, parse_message
from smscd.reset._password import PasswordHasher, new_password
from smscd.reset._phone import canonical_msisdn, is_mobile_key
from smscd.reset._policy import ResetPolicy, window_starts

if TYPE_CHECKING:
    from smscd.reset._templates import Templates

__all__ = [
    "NEXT",
    "STEPS",
    "Finish",
    "Hasher",
    "Next",
    "Pipeline",
    "Step",
    "StepContext",
    "StepResult",
    "utc_now",
]

#: Compared against when the code has no account: ``84`` + ``0…`` is never a
#: canonical mobile number, so it never matches.
_DUMMY_PHONE = "84000000000"


class Hasher(Protocol):
    """What the pipeline needs of a password hasher (benchmarks pass a cheap one)."""

    def hash(self, password: str) -> str: ...


def utc_now() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class Next:
    """Go on with the next step."""


@attrs.frozen(kw_only=True)
class Finish:
    """End the chain with this outcome."""

    outcome: Outcome


#: The result of a step: a closed union.
StepResult: TypeAlias = Next | Finish
NEXT = Next()


@attrs.define(kw_only=True)
class StepContext:
    """What the steps know about one MO; each step fills its part."""

    mo: InboundMessage
    policy: ResetPolicy
    hasher: Hasher
    now: datetime
    #: The 10-digit code, once parsed.
    code: str | None = None
    #: The account of the code, once looked up (None if there is none).
    account: Account | None = attrs.field(default=None, repr=False)
    #: The sender's canonical number (None if it is not a Vietnamese mobile).
    sender: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    password_hash: str | None = attrs.field(default=None, repr=False)


Step: TypeAlias = Callable[[StepContext, ResetStore], StepResult]


def parse(ctx: StepContext, store: ResetStore) -> StepResult:
    parsed = parse_message(ctx.mo.text)
    match parsed:
        case BadSyntax():
            return Finish(outcome=Outcome.BAD_SYNTAX)
        case InvalidCode():
            return Finish(outcome=Outcome.INVALID_CODE)
        case ResetRequest(code=code):
            ctx.code = code
            return NEXT
        case _:
            assert_never(parsed)


def look_up(ctx: StepContext, store: ResetStore) -> StepResult:
    assert ctx.code is not None
    ctx.account = store.find_account(ctx.code)
    return NEXT


def match_sender(ctx: StepContext, store: ResetStore) -> StepResult:
    mo = ctx.mo
    # The intake keyed the sender once, with its type of number (sender_key):
    # only a key that is a Vietnamese mobile can match a registered phone.
    ctx.sender = mo.msisdn if is_mobile_key(mo.msisdn) else None
    account = ctx.account
    registered = account.phone if account is not None else _DUMMY_PHONE
    expected = canonical_msisdn(registered) or registered
    given = ctx.sender if ctx.sender is not None else _DUMMY_PHONE
    same_phone = hmac.compare_digest(given.encode(), expected.encode())
    exists = account is not None
    e_transaction = account.e_transaction if account is not None else False
    # Non-short-circuit: the same work whichever condition fails.
    matched = same_phone & (ctx.sender is not None) & exists & e_transaction
    return NEXT if matched else Finish(outcome=Outcome.MISMATCH)


def rate_limit(ctx: StepContext, store: ResetStore) -> StepResult:
    assert ctx.code is not None
    assert ctx.sender is not None
    day_start, month_start = window_starts(ctx.now)
    counts = store.reset_counts(
        msisdn=ctx.sender, bhxh_code=ctx.code, day_start=day_start, month_start=month_start
    )
    policy = ctx.policy
    if (
        counts.phone_day >= policy.rate_limit_per_day
        or counts.code_day >= policy.rate_limit_per_day
        or counts.phone_month >= policy.rate_limit_per_month
        or counts.code_month >= policy.rate_limit_per_month
    ):
        return Finish(outcome=Outcome.RATE_LIMITED)
    return NEXT


def set_new_password(ctx: StepContext, store: ResetStore) -> StepResult:
    ctx.password = new_password()
    ctx.password_hash = ctx.hasher.hash(ctx.password)
    return Finish(outcome=Outcome.RESET_OK)


#: The steps, in order.
STEPS: tuple[Step, ...] = (parse, look_up, match_sender, rate_limit, set_new_password)


def _run(steps: tuple[Step, ...], ctx: StepContext, store: ResetStore) -> Outcome:
    for step in steps:
        result = step(ctx, store)
        match result:
            case Finish(outcome=outcome):
                return outcome
            case Next():
                continue
            case _:
                assert_never(result)
    raise AssertionError("the reset pipeline ended without an outcome")


@attrs.define(kw_only=True)
class Pipeline:
    """Decides MOs; the daemon owns one and calls ``process`` in worker threads.

    ``reload`` (SIGHUP) swaps the policy and texts; a decision in progress keeps
    the ones it started with.
    """

    policy: ResetPolicy
    templates: Templates
    hasher: Hasher
    clock: Callable[[], datetime] = utc_now

    def reload(self, policy: ResetPolicy, templates: Templates) -> None:
        """New limits and texts. The hasher follows new hash parameters when it is
        a ``PasswordHasher`` (an injected test hasher is kept)."""
        if isinstance(self.hasher, PasswordHasher) and self.hasher.params != policy.hash:
            self.hasher = PasswordHasher(policy.hash)
        self.policy = policy
        self.templates = templates

    def decide(
        self,
        mo: InboundMessage,
        store: ResetStore,
        *,
        charging: ChargingMode,
        charge_vnd: int,
    ) -> Decision:
        """Run the steps and return the Decision; commits nothing. Blocks."""
        policy, templates, hasher = self.policy, self.templates, self.hasher
        now = self.clock()
        if now.utcoffset() is None:
            raise ValueError("the pipeline's clock must return aware datetimes")
        ctx = StepContext(mo=mo, policy=policy, hasher=hasher, now=now)
        outcome = _run(STEPS, ctx, store)
        reply = templates.render(outcome, code=ctx.code, password=ctx.password)
        return Decision(
            inbound_id=mo.id,
            outcome=outcome,
            bhxh_code=ctx.code,
            reply_text=reply,
            password_hash=ctx.password_hash if outcome is Outcome.RESET_OK else None,
            charge_vnd=charge_vnd,
            charging=charging,
            decided_at=now,
        )

    def process(
        self,
        mo: InboundMessage,
        store: ResetStore,
        *,
        charging: ChargingMode,
        charge_vnd: int,
    ) -> Decision:
        """``decide`` then ``store.commit_decision`` (one transaction). If the
        commit raises, nothing changed and the exception propagates. Blocks."""
        decision = self.decide(mo, store, charging=charging, charge_vnd=charge_vnd)
        store.commit_decision(decision)
        return decision
