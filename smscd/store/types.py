"""The store's own API: its errors, the rows of the intake, the outbox and the
receipts, and the Protocols through which the daemon's stages reach them.

The pipeline's domain (``Outcome``, ``Decision``, ``InboundMessage``...) and
the ``ResetStore`` Protocol are the pipeline's, in ``smscd.reset``; the store
builds and takes those values. This module imports neither SQLAlchemy nor
trio, and the SQL implementation (``smscd.store.sql``) satisfies its
Protocols. Every method is synchronous and may block; async callers run them
through ``trio.to_thread.run_sync(..., limiter=db_limiter)`` (L9).

All datetimes are timezone-aware UTC. Phone numbers are in the canonical
international form without ``+`` (``84327000686``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.reset import Decision, InboundMessage

__all__ = [
    "AlreadyDecided",
    "DecisionStore",
    "EarlyReceipt",
    "IntakeStore",
    "NewInbound",
    "NewReceipt",
    "OutboundMessage",
    "OutboundState",
    "OutboxStore",
    "QuarantinedItem",
    "ReceiptMatch",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "WalCheckpoint",
]


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database could not be reached or refused the write; retry later."""


class StoreRejected(StoreError):
    """The database refused the data itself (too long, not encodable, a
    constraint): retrying the same item will fail the same way."""


class AlreadyDecided(StoreError):
    """commit_decision() on an MO that already has its decision (a replay)."""


class OutboundState(enum.Enum):
    #: Waiting to be submitted (or to be retried at ``next_attempt_at``).
    QUEUED = "queued"
    #: The SMSC accepted it (submit_sm_resp 0); body masked; waiting for a receipt.
    ACCEPTED = "accepted"
    #: Receipt DELIVRD.
    DELIVERED = "delivered"
    #: Receipt with a final failure (UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN).
    UNDELIVERABLE = "undeliverable"
    #: The SMSC rejected the submit_sm for good (status kept in ``last_status``),
    #: or an operator dropped it from quarantine.
    FAILED = "failed"
    #: Not accepted within ``[outbox] reply_expiry`` or ``max_attempts``:
    #: body masked, an MT-mode charge voided, never sent.
    EXPIRED = "expired"
    #: Submitting or recording it failed on its data (or it was leased when two
    #: daemons in a row stopped): set aside until an operator acts; it still
    #: expires like a queued reply.
    QUARANTINED = "quarantined"


@attrs.frozen(kw_only=True)
class NewInbound:
    """An MO as the daemon hands it to the store, before it is acknowledged."""

    carrier: str
    #: As received on the wire (``84327000686``, ``0327000686``, ``+84…``).
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    #: The sender's key (``smscd.reset.sender_key``: ``84327000686`` for any
    #: form of a Vietnamese mobile), for matching.
    msisdn: str
    destination_addr: str
    text: str
    received_at: datetime


@attrs.frozen(kw_only=True)
class OutboundMessage:
    id: int
    #: The MO this replies to; None for an API client's MT.
    inbound_id: int | None
    carrier: str
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    #: Plaintext while QUEUED; masked once ACCEPTED.
    body: str = attrs.field(repr=False)
    state: OutboundState
    attempts: int
    next_attempt_at: datetime
    smsc_message_id: str | None = None
    last_status: int | None = None
    #: The sender id to submit with (an API client's); None: the carrier's own.
    source_addr: str | None = None
    source_addr_ton: int | None = None
    source_addr_npi: int | None = None


@attrs.frozen(kw_only=True)
class NewReceipt:
    carrier: str
    #: The id as the receipt gave it (TLV receipted_message_id or text ``id:``).
    message_id: str
    #: Canonical lookup keys of that id (see smscd.smpp.message_id_keys).
    id_keys: frozenset[str]
    #: DELIVRD, UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN, ACCEPTD, ENROUTE.
    stat: str
    err: str
    final: bool
    received_at: datetime


@attrs.frozen(kw_only=True)
class ReceiptMatch:
    """The reply a receipt was matched to, and the MO it answered."""

    outbound_id: int
    #: None for an API client's MT (no MO behind it).
    mo_id: int | None
    #: The subscriber's number, as the reply was addressed.
    destination_addr: str


@attrs.frozen(kw_only=True)
class EarlyReceipt:
    """A receipt stored before its reply was accepted (it came before the
    submit_sm_resp was recorded), matched when the acceptance was."""

    receipt_id: int
    carrier: str
    stat: str
    match: ReceiptMatch


@attrs.frozen(kw_only=True)
class QuarantinedItem:
    """An MO or a reply set aside (``smscd quarantine list``)."""

    #: ``"mo"`` or ``"reply"``.
    kind: str
    id: int
    carrier: str
    #: The sender (an MO) or the addressee (a reply), as on the wire.
    address: str
    stage: str
    reason: str
    at: datetime | None
    #: How many daemons stopped while holding it.
    claims: int


@attrs.frozen(kw_only=True)
class WalCheckpoint:
    """One pass of ``checkpoint_wal``: the WAL's pages and how many of them
    are in the database now; ``restarted`` when the WAL was emptied (the
    next write starts it again from its beginning)."""

    pages: int
    copied: int
    restarted: bool


class DecisionStore(Protocol):
    """The daemon's group commit of decisions (``smscd.reset.ResetStore`` stays
    what the pipeline needs, one decision at a time)."""

    def commit_decisions(
        self, decisions: Sequence[Decision], *, lease_s: float | None = None
    ) -> list[int | None]:
        """``smscd.reset.ResetStore.commit_decision`` for several MOs in ONE
        transaction. Returns each decision's outbound id, or None where the MO
        was not RECEIVED (already decided, unknown, or decided by an earlier
        decision of the same batch): nothing was written for that one. Any
        other failure (a RESET_OK for a code with no account, StoreUnavailable)
        rolls back the whole batch and raises."""
        ...


class IntakeStore(Protocol):
    def store_inbound(
        self, batch: Sequence[NewInbound], *, duplicate_window_s: float
    ) -> list[InboundMessage]:
        """Commit a batch of MOs in one transaction, in order. An MO with the
        same carrier, msisdn and text as one received within the window is stored
        as DUPLICATE. Returns the stored rows (with ids and states)."""
        ...

    def claim_inbound(self, *, limit: int) -> list[InboundMessage]:
        """MOs in state RECEIVED, oldest first (restart recovery and the worker
        feed). On PostgreSQL rows are locked with SKIP LOCKED for the claim."""
        ...


class OutboxStore(Protocol):
    def claim_outbound(
        self, *, carrier: str, now: datetime, limit: int, lease_s: float
    ) -> list[OutboundMessage]:
        """Queued replies of ``carrier`` due at ``now``, oldest first, leased to
        this caller for ``lease_s`` seconds (FOR UPDATE SKIP LOCKED on PostgreSQL,
        so several daemons never claim the same row)."""
        ...

    def mark_accepted(
        self, outbound_id: int, *, message_id: str, id_keys: frozenset[str], now: datetime
    ) -> None:
        """ACCEPTED, attempts+1, body masked, message id and its keys recorded; a
        receipt that came before this (stored unmatched) is applied now."""
        ...

    def mark_accepted_many(
        self, accepted: Sequence[tuple[int, str, frozenset[str]]], *, now: datetime
    ) -> list[EarlyReceipt]:
        """``mark_accepted`` for several ``(outbound_id, message_id, id_keys)`` in
        ONE transaction; StoreError (and nothing written) if an id is unknown.
        Returns the receipts stored before their reply's acceptance that it
        matched."""
        ...

    def mark_retry(
        self, outbound_id: int, *, status: int | None, next_attempt_at: datetime
    ) -> None:
        """Still QUEUED; attempts+1; due again at ``next_attempt_at``."""
        ...

    def mark_failed(self, outbound_id: int, *, status: int, now: datetime) -> None:
        """FAILED for good; an MT-mode charge is voided."""
        ...

    def record_receipt(self, receipt: NewReceipt) -> int | None:
        """Store the receipt; match it to an outbound message of the same carrier
        by any of its id keys; update the message state and, in MT charging
        mode, finalise (DELIVRD) or void (final failure) the charge. Returns the
        matched outbound id, or None (kept for a later mark_accepted)."""
        ...

    def record_receipts(self, receipts: Sequence[NewReceipt]) -> list[int | None]:
        """``record_receipt`` for several receipts in ONE transaction, in order;
        returns each one's matched outbound id (None: kept for mark_accepted)."""
        ...

    def outbox_depth(self) -> dict[str, int]:
        """QUEUED messages per carrier (for metrics)."""
        ...
