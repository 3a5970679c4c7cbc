"""``POST /v1/resets``: a hotline (or app, portal) reset through the pipeline
of the 8079 MOs, answered in the response instead of by SMS.

Theory of operation
-------------------
A call is decided like an MO whose sender is the caller's number and whose
text is ``BH MK <code>``, by the decide stage's own machinery:

1. the caller's number is held (``senders``), as a worker holds an MO's
   sender, from before the rate-limit read to after the commit. An API reset
   and an 8079 MO of one phone never overlap: the committer does not decide an
   MO whose sender is held, and a worker waits for it;
2. the first pass (``decide_each`` with the ``_PasswordCatcher``: the steps
   parse, look up, match the sender, count the limits, draw a password) runs
   in a database thread. The limits count RESET_OK rows of every channel, so
   the API and the short code share them;
3. a new password is hashed in a ``hashing`` process, off the event loop;
4. ``store.commit_api_reset`` writes in ONE transaction the call's row,
   already DECIDED (channel, client, outcome, the text without any password),
   and for a RESET_OK the hash and must-change flag. No reply is queued and no
   charge recorded: the call is not an SMS.

Only then is the sender released and the answer given; only a RESET_OK's
answer carries the password, which exists in plaintext nowhere else (not in
the row, not in a log). Any failure (the store, a hashing process that died,
a bug of the pipeline on this input) raises before or inside the one
transaction, so nothing is written, and the HTTP side answers an error; the
caller may ask again, which draws a fresh password.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
import structlog

from smscd._hashing import HashFailed
from smscd.api import ResetAnswer
from smscd.reset import InboundMessage, InboundState, Outcome, is_mobile_key, mask_msisdn
from smscd.service._items import ItemFailed
from smscd.service.decide import _HASH_PENDING, _PasswordCatcher
from smscd.store import StoreError
from smscd.store.sql import API_CARRIER

if TYPE_CHECKING:
    from smscd.api import ApiClient, ResetCall
    from smscd.reset import Decision
    from smscd.service._state import DaemonState

__all__ = ["RESETS_SCOPE", "reset_call"]

log = structlog.get_logger("smscd")

#: The scope a client needs for ``POST /v1/resets``.
RESETS_SCOPE = "resets"
#: The caller's number is recorded international (TON 1, NPI 1: E.164).
_TON_INTERNATIONAL = 1
_NPI_E164 = 1


def call_text(bhxh_code: str) -> str:
    """The text a call is decided and recorded as: the MO the caller would send."""
    return f"BH MK {bhxh_code}"


def _first_pass(daemon: DaemonState, mo: InboundMessage) -> tuple[Decision, str | None]:
    """Blocking: the call's decision with the new password caught, not hashed
    (RESET_OK only; None otherwise)."""
    catcher = _PasswordCatcher()
    (first,) = daemon.decide_each([mo], catcher)
    if isinstance(first, Exception):
        raise first
    return first, catcher.password


async def reset_call(daemon: DaemonState, client: ApiClient, call: ResetCall) -> ResetAnswer:
    """Decide and record one ``POST /v1/resets`` (see the module docstring) and
    answer its outcome; the password only for a RESET_OK. ``call.msisdn`` is
    the caller's canonical number (``84...``). Raises ``StoreError``,
    ``HashFailed`` or ``ItemFailed`` when the call could not be decided, and
    then nothing was written."""
    if RESETS_SCOPE not in client.scopes:
        raise PermissionError(f"client {client.name} has no {RESETS_SCOPE} scope")
    msisdn = call.msisdn
    if not is_mobile_key(msisdn):
        raise ValueError("the caller's number is not a canonical Vietnamese mobile number")
    received_at = datetime.now(UTC)
    text = call_text(call.bhxh_code)
    mo = InboundMessage(
        id=0,  # no row yet: it is written with the decision
        carrier=API_CARRIER,
        source_addr=msisdn,
        source_addr_ton=_TON_INTERNATIONAL,
        source_addr_npi=_NPI_E164,
        msisdn=msisdn,
        destination_addr=API_CARRIER,
        text=text,
        received_at=received_at,
        state=InboundState.RECEIVED,
    )
    await daemon.senders.hold(msisdn)
    try:
        decision, password = await daemon.db(_first_pass, daemon, mo)
        if password is not None:
            password_hash, cpu_s = await daemon.hashing.hash(password)
            daemon.metrics.hash_cpu.observe(cpu_s)
            decision = attrs.evolve(decision, password_hash=password_hash)
        if decision.password_hash == _HASH_PENDING:
            raise RuntimeError("an API reset reached its commit without its password hash")
        # A caller who hangs up before the commit starts changes nothing; once
        # it started, it is finished (a database thread is never abandoned)
        # and logged, with no checkpoint between the two.
        call_id = await daemon.db(
            daemon.store.commit_api_reset,
            decision,
            msisdn=msisdn,
            text=text,
            channel=call.channel,
            client_id=client.id,
            received_at=received_at,
        )
        daemon.metrics.api_resets.labels(channel=call.channel, outcome=decision.outcome.value).inc()
        log.info(
            "api_reset_decided",
            call_id=call_id,
            client=client.name,
            channel=call.channel,
            msisdn=mask_msisdn(msisdn),
            outcome=decision.outcome.value,
        )
    except (StoreError, HashFailed, ItemFailed) as exc:
        log.warning(
            "api_reset_failed",
            client=client.name,
            channel=call.channel,
            msisdn=mask_msisdn(msisdn),
            error=str(exc),
        )
        raise
    finally:
        daemon.senders.release(msisdn)
    reset = decision.outcome is Outcome.RESET_OK
    return ResetAnswer(
        id=call_id, outcome=decision.outcome.value, password=password if reset else None
    )
