"""The pipeline's domain: what it reads, what it decides, and the store it needs.

The pipeline defines these and the ``ResetStore`` Protocol through which it
reaches the world; ``smscd.store`` implements that Protocol and builds these
values from its rows. Nothing here imports the store, SQL or trio.

All datetimes are timezone-aware UTC. Phone numbers are in the canonical
international form without ``+`` (``84327000686``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "Account",
    "ChargingMode",
    "Decision",
    "InboundMessage",
    "InboundState",
    "Outcome",
    "ResetCounts",
    "ResetStore",
]


class Outcome(enum.Enum):
    """The five answers of the reset service (DESIGN.md, reply texts)."""

    #: Password changed; the reply carries it.
    RESET_OK = "reset_ok"
    #: Wrong phone, unknown code or not registered for e-transactions.
    MISMATCH = "mismatch"
    #: ``BH MK`` followed by anything but exactly 10 digits.
    INVALID_CODE = "invalid_code"
    #: Not a ``BH MK`` message at all.
    BAD_SYNTAX = "bad_syntax"
    #: Too many resets for this phone or code.
    RATE_LIMITED = "rate_limited"


class ChargingMode(enum.Enum):
    #: The carrier bills the MO; a final charge is recorded at decision time.
    MO = "mo"
    #: The reply carries the charge: pending until a DELIVRD receipt, void on a
    #: final failure.
    MT = "mt"


class InboundState(enum.Enum):
    #: Committed and acknowledged, waiting for the pipeline.
    RECEIVED = "received"
    #: The pipeline's decision is committed with its reply and charge.
    DECIDED = "decided"
    #: A redelivery of an MO already stored: acknowledged, never answered again.
    DUPLICATE = "duplicate"
    #: Its processing failed (or it was in progress when two daemons in a row
    #: stopped): set aside with the stage and reason, until an operator
    #: retries or drops it (``smscd quarantine``).
    QUARANTINED = "quarantined"
    #: Quarantined, then dropped by an operator: never answered.
    DROPPED = "dropped"


@attrs.frozen(kw_only=True)
class Account:
    bhxh_code: str
    #: Canonical phone, already converted from the pre-2018 11-digit form.
    phone: str
    e_transaction: bool
    password_hash: str | None = attrs.field(default=None, repr=False)
    must_change: bool = False


@attrs.frozen(kw_only=True)
class ResetCounts:
    """Successful resets (Outcome.RESET_OK) since the given instants."""

    phone_day: int
    phone_month: int
    code_day: int
    code_month: int


@attrs.frozen(kw_only=True)
class InboundMessage:
    """An MO as committed (and acknowledged): what the pipeline decides on."""

    id: int
    carrier: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    #: The sender's key (``sender_key``): the canonical number of a Vietnamese
    #: mobile, else a ``+`` or ``#`` form that matches no account.
    msisdn: str
    destination_addr: str
    text: str
    received_at: datetime
    state: InboundState
    outcome: Outcome | None = None


@attrs.frozen(kw_only=True)
class Decision:
    """What the pipeline decided for one MO; committed in one transaction with
    the password update (if any), the queued reply and the charge."""

    inbound_id: int
    outcome: Outcome
    #: The 10-digit code when the text carried one.
    bhxh_code: str | None
    #: The reply body, plaintext (it carries the new password for RESET_OK).
    reply_text: str = attrs.field(repr=False)
    #: argon2id hash of the new password; set if and only if outcome is RESET_OK.
    password_hash: str | None = attrs.field(default=None, repr=False)
    charge_vnd: int
    charging: ChargingMode
    decided_at: datetime


class ResetStore(Protocol):
    """What the reset pipeline needs of the store; nothing more.

    Every method is synchronous and may block; async callers run them in a
    worker thread (STYLE L9)."""

    def find_account(self, bhxh_code: str) -> Account | None: ...

    def reset_counts(
        self, *, msisdn: str, bhxh_code: str, day_start: datetime, month_start: datetime
    ) -> ResetCounts: ...

    def commit_decision(self, decision: Decision) -> int:
        """One transaction: mark the MO decided with its outcome, set the new
        password hash and must-change flag (RESET_OK only), queue the reply,
        record the charge (one per MO). Returns the outbound message id.
        Raises if the MO is not in state RECEIVED or the database fails, and
        then nothing was written (the store's errors: ``AlreadyDecided``,
        ``StoreUnavailable``)."""
        ...
