"""The SQL implementation of the store (SQLite and PostgreSQL): ``SqlStore``.

Theory of operation
-------------------
``SqlStore`` implements the pipeline's ``smscd.reset.ResetStore`` and the
store's own ``DecisionStore``, ``IntakeStore`` and ``OutboxStore``
(``smscd.store.types``). It is composed of one part per aggregate, each a
mixin over ``StoreBase`` (``_base``: the engine, the transactions, the SQLite
write lock) in a module of its own, with the statements it runs:

* ``_intake``: MOs stored before they are acknowledged, redeliveries told apart;
* ``_decisions``: an MO decided, with its password, reply and charge;
* ``_outbox``: a reply accepted (body masked, id keys owned), retried, failed;
* ``_receipts``: receipts matched to replies, and the charges they settle;
* ``_containment`` and ``_quarantine``: claims, expiry, items set aside;
* ``_accounts``: the pipeline's reads, ``accounts show`` and the import;
* ``_api_resets``: a ``POST /v1/resets`` recorded and decided (no reply);
* ``_api`` and ``_api_callbacks``: API clients, their MTs (queued with their
  charge), and the callbacks owed for their final states;
* ``_reports`` and ``_prune``: the reports, the status page's reads, prune.

Mixins rather than a facade over repositories: every part needs the same
transaction plumbing and the same SQLite write lock, and ``commit_inbound``
(here) writes through four of them in ONE transaction; one class keeps one
object with one set of methods for the daemon, with no delegating layer to
keep in step.

Every public method is one short transaction on a pooled connection, written
with SQLAlchemy Core against the models (no ORM session, no identity map: the
rows become attrs values right here, and only here). Writing methods begin with
``BEGIN IMMEDIATE`` on SQLite (see ``_engine``); any database error rolls the
transaction back and surfaces as ``StoreUnavailable``, or ``StoreRejected``
when the data itself was refused (a value too long or not encodable, a
constraint), with the statement's parameters hidden: they may carry a password.

The daemon writes in batches (its group commits): ``commit_inbound`` (the MOs
and receipts an SMSC delivered, with the decisions that can be made at once),
``commit_decisions`` and ``mark_accepted_many`` take many rows and spend one
transaction and a handful of statements on all of them (statements built once
at import, ``executemany`` for independent rows; on SQLite the new rows' ids
are numbered inside the transaction, see ``StoreBase._insert_numbered``); the
one-row methods are batches of one. On SQLite the writing threads of one
process queue on a lock of the store before ``BEGIN IMMEDIATE``, not in
SQLite's busy handler, which sleeps between retries, and the statements
marked ``prepared`` run on the DBAPI cursor, compiled once (``_cursor``):
methods execute on a ``Statements``, which picks the way per statement.

The invariants of DESIGN.md that live here:

* (1) ``store_inbound`` and ``commit_inbound`` commit the batch before
  returning; the daemon acks after.
* (2) ``commit_decision`` flips the MO from ``received`` to ``decided`` with a
  conditional UPDATE (so two workers or two daemons can't both decide it),
  updates the password, queues the reply and records the charge, all in one
  transaction.
* (3)/(5) UNIQUE(inbound_id) on ``outbound_messages`` and ``charges``.
* (4) ``mark_accepted`` and ``mark_failed`` mask the reply body: the only
  plaintext password at rest is in a reply still waiting to be submitted.

Receipts are matched by (carrier, key) over every canonical form of the SMSC's
message id (hex/decimal). A receipt that arrives before its submit_sm_resp was
committed is stored unmatched with its keys; ``mark_accepted`` looks them up
and applies it, so the order of the two does not matter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
from sqlalchemy.exc import SQLAlchemyError

from smscd.reset import VIETNAM_TZ, Decision, InboundMessage, InboundState, Outcome
from smscd.store._accounts import AccountDetails, Accounts
from smscd.store._api import ApiClientListing, ApiMessages
from smscd.store._api_callbacks import ApiCallbacks, DueCallback
from smscd.store._api_resets import API_CARRIER, ApiResets
from smscd.store._base import unavailable
from smscd.store._bulk import AccountImport
from smscd.store._containment import Containment
from smscd.store._decisions import Decisions, check_decisions
from smscd.store._engine import (
    DatabaseMissing,
    SchemaNotCurrent,
    create_store_engine,
    masked_url,
    sqlite_path,
)
from smscd.store._intake import Intake
from smscd.store._masking import mask_body
from smscd.store._outbox import Outbox
from smscd.store._prune import Prune, PruneCounts
from smscd.store._quarantine import Quarantine
from smscd.store._receipts import Receipts
from smscd.store._reports import ActivityDay, ChargesDay, ReceiptsDay, Reports
from smscd.store.migrate import current_revision_of, head_revision, upgrade

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smscd.store.types import EarlyReceipt, NewInbound, NewReceipt, ReceiptMatch

__all__ = [
    "API_CARRIER",
    "VIETNAM_TZ",
    "AccountDetails",
    "AccountImport",
    "ActivityDay",
    "ApiClientListing",
    "ChargesDay",
    "DueCallback",
    "InboundCommit",
    "PruneCounts",
    "ReceiptsDay",
    "SchemaNotCurrent",
    "SqlStore",
    "mask_body",
    "masked_url",
    "open_store",
    "sqlite_path",
]


@attrs.frozen(kw_only=True)
class InboundCommit:
    """What ``SqlStore.commit_inbound`` committed."""

    #: Each MO as stored (its state as committed), its decision if one was made
    #: at once, and the outbound id of its reply (None where undecided).
    messages: list[tuple[InboundMessage, Decision | None, int | None]]
    #: Each receipt's reply (None: kept for mark_accepted).
    receipts: list[ReceiptMatch | None]
    #: Receipts stored earlier that the acceptances in this transaction matched.
    early: list[EarlyReceipt] = attrs.field(factory=list)


class SqlStore(
    Intake,
    Decisions,
    Outbox,
    Receipts,
    Containment,
    Quarantine,
    Accounts,
    Reports,
    Prune,
    ApiResets,
    ApiMessages,
    ApiCallbacks,
):
    """``smscd.reset.ResetStore``, ``DecisionStore``, ``IntakeStore`` and
    ``OutboxStore`` over one SQLAlchemy engine.

    Thread-safe in the way the daemon uses it: each call checks a connection
    out of the pool for its own transaction. Build it with :func:`open_store`.
    """

    def commit_inbound(
        self,
        batch: Sequence[NewInbound],
        receipts: Sequence[NewReceipt] = (),
        *,
        duplicate_window_s: float,
        decisions: Sequence[Decision | None] = (),
        lease_s: float | None = None,
        accepted: Sequence[tuple[int, str, frozenset[str]]] = (),
        now: datetime | None = None,
    ) -> InboundCommit:
        """What an SMSC delivered, in ONE transaction (the daemon's intake):
        ``store_inbound`` of the MOs, the decisions already made for them,
        ``mark_accepted_many`` of the SMSC's acceptances (``accepted``, at
        ``now``; an id with no reply is left out), then ``record_receipts`` of
        the receipts, which so find the replies accepted with them.

        ``decisions[i]`` is the decision the caller made for ``batch[i]``
        before the transaction (its ``inbound_id`` is set here, once the MO has
        its id), or None (or missing) to leave the MO RECEIVED for later. An
        MO that is not a redelivery is inserted DECIDED with it, its reply and
        charge beside it; a redelivery's decision is dropped. No RESET_OK (a
        new password waits for no transaction). The store never calls the
        caller back: it reads nothing it did not write.
        One transaction instead of three for the MOs answered at once and the
        receipts that came with them."""
        if not batch and not receipts and not accepted:
            return InboundCommit(messages=[], receipts=[])
        if any(d is not None and d.outcome is Outcome.RESET_OK for d in decisions):
            raise ValueError("commit_inbound does not take a RESET_OK decision")
        check_decisions(d for d in decisions if d is not None)
        with self._write() as conn:
            stored = (
                self._insert_inbound(
                    conn, batch, duplicate_window_s=duplicate_window_s, decisions=decisions
                )
                if batch
                else []
            )
            decided = [
                (attrs.evolve(decision, inbound_id=mo.id), mo)
                for mo, decision in zip(stored, decisions, strict=False)
                if decision is not None and mo.state is InboundState.DECIDED
            ]
            outbound = self._apply_decisions(conn, decided, lease_s=lease_s)
            early: list[EarlyReceipt] = []
            if accepted:
                early = self._mark_accepted(conn, accepted, now=now or datetime.now(UTC))[1]
            matched = self._record_receipts(conn, receipts)
        applied = {mo.id: decision for decision, mo in decided}
        return InboundCommit(
            messages=[(mo, applied.get(mo.id), outbound.get(mo.id)) for mo in stored],
            receipts=matched,
            early=early,
        )


def _not_current_message(url: str, current: str | None, head: str) -> str:
    return (
        f"database at {masked_url(url)} is not migrated "
        f'(at {current or "empty"}, need {head}): run "smscd db upgrade"'
    )


def open_store(
    url: str, *, create_if_missing: bool = False, background_checkpoints: bool = False
) -> SqlStore:
    """Open the store at ``url``, refusing a database that is not at the head
    revision (``SchemaNotCurrent``). With ``create_if_missing`` an empty or
    missing database is created and migrated first (tests, demo); a database
    at another revision is still refused: migrating is the operator's call.
    With ``background_checkpoints`` (the daemon) SQLite's commits never
    checkpoint the WAL: the caller must call ``checkpoint_wal`` now and then."""
    head = head_revision()
    if create_if_missing:
        try:
            engine = create_store_engine(url, create_file=False)
        except DatabaseMissing:
            upgrade(url)
        else:
            try:
                empty = current_revision_of(engine) is None
            except SQLAlchemyError as exc:
                raise unavailable(exc) from exc
            finally:
                engine.dispose()
            if empty:
                upgrade(url)
    try:
        engine = create_store_engine(
            url, create_file=False, autocheckpoint=not background_checkpoints
        )
    except DatabaseMissing:
        raise SchemaNotCurrent(_not_current_message(url, None, head)) from None
    try:
        current = current_revision_of(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise unavailable(exc) from exc
    if current != head:
        engine.dispose()
        raise SchemaNotCurrent(_not_current_message(url, current, head))
    return SqlStore(engine, url=url)
