"""The daemon: the one place that wires the layers together (L10).

Theory of operation
-------------------
One trio nursery holds every task of the process::

    link.run xcarrier ──inbound()──▶ intake xcarrier ── MOs, receipts ──▶ committer ─┬─▶ hand-off
                                                                                     ├─▶ reset
                                                                                     └─▶ decide
    reset ──▶ resetter xN ──▶ hash (a hashing process) ──▶ commit ──▶ hand-off
    decide ──▶ worker xN ──▶ first pass, batched (decide without hashing; commit
                             what needs no hash) ──▶ resets: hash, commit ──▶ hand-off
    hand-off / outbox claimer xcarrier ──▶ submitter xwindow ──link.submit──▶ accepted/retry/failed
    recovery (RECEIVED MOs left by a crash), watchdog, metrics, signals

Durability is decided by the order of three things per MO: it is committed
(``commit_inbound``, one transaction for a batch: the group commit), *then*
its deliver_sm_resp goes out with status 0, *then* its reply is submitted. A
crash before the commit means the SMSC never got a 0 and redelivers; a crash
after it leaves either a queued reply (leased to the dead daemon; the next
start frees the lease) or a RECEIVED row that ``recovery`` feeds to the workers
on the next start. The decision, password change, queued reply and charge are
one transaction in the store, so a crash mid-decision changes nothing. Replies
are marked ACCEPTED only after the SMSC's submit_sm_resp: a crash between the
two resends that reply once after the lease (at-least-once for exactly that
window; the link counts in-flight submits lost with a connection). Receipts,
like MOs, are acknowledged only after their batch is committed.

Throughput comes from batching, because with SQLite every transaction and every
thread hop costs the one core the GIL gives us. Each write path is a group
commit: whatever waits while one transaction runs goes into the next one
(``committer`` drains a channel of MOs and receipts, both in one transaction
with the SMSC's acceptances waiting, so that receipts find their replies
accepted; ``accept_recorder`` writes the acceptances no intake took; decisions
use ``_GroupCommit``, where the first waiter writes for everyone). MOs are decided
in their intake transaction (``decide_at_once``), read for read as a worker
would: help, invalid code, mismatch and RATE_LIMITED are committed with it. A
reset (the registered phone, within its limits) gets its new password there
but stays RECEIVED: the password is hashed in one of the ``hashing`` processes
(one per core, niced below the daemon; see ``smscd._hashing``) and the reset
committed by a resetter, with a group commit of its own. Two decisions of one
number must never overlap (the rate-limit check and the commit are separate
store calls), so a sender is held (``senders``) from its check to its commit:
the committer holds the senders of its batch for the transaction, and a
reset's sender stays held until the resetter commits it. An MO whose sender is
held, and a second one of the same sender in one batch, stay RECEIVED for the
workers, which decide them like the MOs left by a crash: a first pass for a
batch of MOs in one thread, with a hasher that only catches the new password,
then a reset is finished like one from intake. Every committed reply is born
leased to this daemon and handed straight to its carrier's submitters, without
waiting (if they are all busy, its lease is freed); the claimer takes the rest
(retries, leases run out or freed, other daemons' work). Receipts share the SMSC's
deliver_sm window with the MOs (an unacknowledged receipt is an MO the SMSC
cannot send), so an MO never waits for company before its transaction; a few
receipts with no MO wait briefly (``RECEIPT_LINGER_S``) to ride with the next
one. While hashing is the bottleneck, hashed resets wait briefly for each
other to share their commit (``reset_linger``).

Blocking calls run off the event loop: database calls in threads through
``db_limiter``, argon2 in the ``hashing`` processes, so the event loop keeps
answering enquire_link under any load. ``SMSCD_PROFILE=FILE`` profiles the
event loop (cProfile) into FILE.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import re
import signal
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

import attrs
import structlog
import trio

from smscd import _metrics
from smscd._hashing import HashFailed, HashProcesses
from smscd._lockfile import AlreadyRunning, DaemonLock
from smscd._systemd import Notifier, watchdog_interval
from smscd.config import Config, ConfigError, load_config
from smscd.link import (
    Accepted,
    InboundMo,
    InboundReceipt,
    Link,
    OutboundSm,
    Rejected,
    RetryLater,
    ack_all,
)
from smscd.logging import configure_logging
from smscd.reset import (
    Account,
    ChargingMode,
    Decision,
    InboundMessage,
    InboundState,
    Pipeline,
    ResetCounts,
    ResetRequest,
    mask_msisdn,
    parse_message,
    sender_key,
)
from smscd.smpp import CommandStatus
from smscd.store import (
    EarlyReceipt,
    NewInbound,
    NewReceipt,
    OutboundMessage,
    OutboundState,
    QuarantinedItem,
    ReceiptMatch,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)
from smscd.store.sql import (
    InboundCommit,
    SchemaNotCurrent,
    SqlStore,
    open_store,
    sqlite_path,
)
from smscd.web import (
    DayActivity,
    QueueStatus,
    StatusBoard,
    StatusSnapshot,
    StoreStatus,
    create_app,
    run_sampler,
    serve_web,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

    from smscd.link import LinkStatistics
    from smscd.reset import Hasher

__all__ = ["Daemon", "run"]

log = structlog.get_logger("smscd")

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: How long a claimed outbox row stays ours without a verdict (then another
#: claimer, or this one after a restart, may submit it again).
OUTBOX_LEASE_S = 60.0
#: Poll period of the outbox claimer. Fresh replies are handed to the submitters
#: directly; the claimer picks up retries as they come due, replies whose lease
#: ran out, and work queued by other daemons sharing a PostgreSQL store.
OUTBOX_POLL_S = 0.5
#: Retry schedule of a reply the SMSC asked us to send later.
RETRY_BASE_S = 2.0
RETRY_MAX_S = 300.0
#: Graceful stop budget (systemd's TimeoutStopSec is larger).
STOP_DRAIN_S = 3.0
RECOVERY_PERIOD_S = 5.0
RECOVERY_BATCH = 500
#: PostgreSQL: an MO another daemon claimed this long ago is taken over (that
#: daemon died, or is stuck); see smscd.store._containment.
CLAIM_STALE_S = 60.0
#: How often replies are checked for expiry, and how many at a time.
EXPIRY_PERIOD_S = 5.0
EXPIRY_BATCH = 500
CHECKPOINT_PERIOD_S = 30.0
#: How long a small batch of the SMSC's acceptances waits for more before its
#: transaction (nobody waits on these), and the size from which it does not
#: wait.
SETTLE_LINGER_S = 0.05
LINGER_BELOW = 16
#: How long a small batch of receipts with no MO waits for more (an MO ends
#: the wait). Shorter than the acceptances' linger: each receipt not yet
#: acknowledged holds a slot of the SMSC's deliver_sm window, which it shares
#: with the MOs (at most LINGER_BELOW of them, for this long).
RECEIPT_LINGER_S = 0.025
#: While hashing is the bottleneck (see Daemon.reset_linger), hashed resets
#: commit in batches of this many per hashing process, and the first of a
#: batch waits at most this long for the others: about the time the processes
#: take for a batch.
RESET_BATCH_PER_HASHER = 4
RESET_LINGER_S = 0.1
#: Default pipeline workers per core (``[daemon] workers = 0``). Hashing is
#: bounded by the ``hashing`` processes whatever this is; more workers let decisions
#: that do not hash share their group commit.
WORKERS_PER_CORE = 16
#: Resetters per hashing process: enough to keep each process's queue full
#: (``_hashing.DEPTH``) while a batch of others waits for its commit
#: (``RESET_BATCH_PER_HASHER``).
RESETTERS_PER_HASHER = 8
#: How long the status page and /healthz wait for the store's answer.
STORE_CHECK_S = 2.0
#: ...and for the last 30 days (read at most once a minute).
DAILY_QUERY_S = 10.0
#: Environment variable naming a file: profile the event loop into it (development).
PROFILE_ENV = "SMSCD_PROFILE"


@attrs.define
class _PendingMo:
    item: InboundMo
    new: NewInbound


@attrs.define
class _PendingReceipt:
    item: InboundReceipt
    new: NewReceipt


_Pending: TypeAlias = _PendingMo | _PendingReceipt


@attrs.define(kw_only=True)
class _Intake:
    """What ``Daemon.commit_pending`` made of a batch: the MOs and receipts it
    committed (with ``committed`` and ``resets`` as ``commit_intake`` gives
    them), those the store refused, and those left when it went down."""

    mos: list[_PendingMo]
    receipts: list[_PendingReceipt]
    committed: InboundCommit
    resets: dict[int, _Reset] = attrs.field(factory=dict)
    refused: list[tuple[_Pending, Exception]] = attrs.field(factory=list)
    tempfail: list[_Pending] = attrs.field(factory=list)


class ItemFailed(Exception):
    """Deciding one MO failed on something else than the store: carries the
    exception, for the worker to quarantine that MO alone."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(_describe(cause))
        self.cause = cause


_LONG_NUMBER = re.compile(r"\d{7,}")
_DESCRIBE_LIMIT = 200


def _describe(exc: BaseException) -> str:
    """An exception as a log line or a quarantine reason may show it: its type
    and message, numbers that could be phones masked, at most 200 characters."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = _LONG_NUMBER.sub(lambda m: mask_msisdn(m.group()), text)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= _DESCRIBE_LIMIT else text[: _DESCRIBE_LIMIT - 3] + "..."


#: What the first pass of a decision puts where the password hash goes; it is
#: replaced before the decision is committed, and never reaches the store.
_HASH_PENDING = "<hash pending>"


class _PasswordCatcher:
    """The hasher of the first pass of a decision (``Daemon.decide``): keeps the
    new password for the real hash (done next, in a hashing process) and
    answers with a placeholder."""

    password: str | None = None

    def hash(self, password: str) -> str:
        self.password = password
        return _HASH_PENDING


class _HashesElsewhere:
    """The hasher of the daemon's pipeline between decisions: every decision
    swaps in a ``_PasswordCatcher`` and the hash is made in a hashing process,
    so hashing here would be a bug (argon2 on a database thread)."""

    def hash(self, password: str) -> str:
        raise RuntimeError("the daemon hashes in its hashing processes (smscd._hashing)")


class _OwnerWaits(Exception):
    """Raised from the pipeline's rate-limit read at intake: the MO comes from
    the registered phone of its code, and another decision of that sender is
    in progress, so it is decided by a worker once that one is committed."""


class _Senders:
    """The senders with a decision in progress: one at a time per sender.

    The rate-limit check and the commit of a reset are separate store calls
    (the hash comes between), and only the registered phone can reach a
    reset, so holding its sender from the check to the commit closes the
    check-then-act race. A sender is held by whoever decides (the committer
    for a batch, then a resetter; or a worker), not by a task, so a hold can
    change hands without a gap."""

    def __init__(self) -> None:
        self._held: dict[str, trio.Event] = {}

    def try_hold(self, msisdn: str) -> bool:
        if msisdn in self._held:
            return False
        self._held[msisdn] = trio.Event()
        return True

    async def hold(self, msisdn: str) -> None:
        while (released := self._held.get(msisdn)) is not None:
            await released.wait()
        self._held[msisdn] = trio.Event()

    def release(self, msisdn: str) -> None:
        self._held.pop(msisdn).set()


def _reply_row(mo: InboundMessage, decision: Decision, outbound_id: int) -> OutboundMessage:
    return OutboundMessage(
        id=outbound_id,
        inbound_id=mo.id,
        carrier=mo.carrier,
        destination_addr=mo.source_addr,
        dest_addr_ton=mo.source_addr_ton,
        dest_addr_npi=mo.source_addr_npi,
        body=decision.reply_text,
        state=OutboundState.QUEUED,
        attempts=0,
        next_attempt_at=decision.decided_at,
    )


@attrs.frozen
class _BatchReads:
    """The store as the pipeline sees it while it decides one batch: the
    accounts the batch's messages name were read in one query beforehand
    (``SqlStore.find_accounts``) instead of one query per message."""

    store: SqlStore
    accounts: Mapping[str, Account | None]
    #: At intake: the senders the committer holds (``_Senders``) and that no
    #: MO of this batch has reached the rate limits for yet. An MO of another
    #: sender that gets as far as the rate limits raises _OwnerWaits.
    free_senders: set[str] | None = None

    @classmethod
    def prefetch(
        cls, store: SqlStore, texts: Iterable[str], *, free_senders: set[str] | None = None
    ) -> _BatchReads:
        codes = [p.code for p in map(parse_message, texts) if isinstance(p, ResetRequest)]
        return cls(store, store.find_accounts(codes), free_senders)

    def find_account(self, bhxh_code: str) -> Account | None:
        if bhxh_code in self.accounts:
            return self.accounts[bhxh_code]
        return self.store.find_account(bhxh_code)

    def reset_counts(
        self, *, msisdn: str, bhxh_code: str, day_start: datetime, month_start: datetime
    ) -> ResetCounts:
        if self.free_senders is not None:
            if msisdn not in self.free_senders:
                raise _OwnerWaits
            # Its counts are read once per transaction: a second MO of the
            # sender in this batch is decided by a worker, after this one.
            self.free_senders.discard(msisdn)
        return self.store.reset_counts(
            msisdn=msisdn, bhxh_code=bhxh_code, day_start=day_start, month_start=month_start
        )

    def commit_decision(self, decision: Decision) -> int:
        return self.store.commit_decision(decision)


@attrs.frozen(kw_only=True)
class _NeedsHash:
    """A RESET_OK decision still to be completed with the hash of ``password``."""

    decision: Decision
    password: str = attrs.field(repr=False)


@attrs.frozen
class _Reset:
    """A reset decided at intake, its sender held: to be hashed and committed."""

    mo: InboundMessage
    reset: _NeedsHash


@attrs.frozen
class _Linger:
    """A batch of fewer than ``size`` items waits up to ``seconds`` to reach it."""

    seconds: float
    size: int


@attrs.define(eq=False)
class _Slot(Generic[ItemT, ResultT]):
    item: ItemT
    done: bool = False
    result: ResultT | Exception | None = None


class _GroupCommit(Generic[ItemT, ResultT]):
    """Many tasks' writes in one transaction, without a task of its own.

    ``submit`` queues an item and takes the lock; whoever gets the lock while
    its item is still queued writes the WHOLE queue with one call of ``write``
    (a blocking batch method of the store, run through ``db``) and hands every
    waiter its own result. While one batch is being written the next one
    gathers, so the batch grows with the load. ``write`` returns one result per
    item, in order; an exception instance among them is raised to that item's
    waiter alone, an exception from ``write`` to every waiter of the batch.
    With ``linger``, a batch first waits for company as ``linger()`` says
    (None: not at all).
    The write runs in a thread that a cancellation does not abandon, so a
    batch that started is finished and its results delivered; a waiter
    cancelled before its batch started takes its item back.
    """

    def __init__(
        self,
        write: Callable[[list[ItemT]], Awaitable[list[ResultT | Exception]]],
        *,
        linger: Callable[[], _Linger | None] = lambda: None,
    ) -> None:
        self._write = write
        self._linger = linger
        self._queue: list[_Slot[ItemT, ResultT]] = []
        self._lock = trio.StrictFIFOLock()
        self._another = trio.Event()

    async def submit(self, item: ItemT) -> ResultT:
        slot: _Slot[ItemT, ResultT] = _Slot(item)
        self._queue.append(slot)
        self._another.set()
        try:
            async with self._lock:
                if not slot.done:
                    await self._wait_for_company()
                    await self._write_queue()
        except BaseException:
            if slot in self._queue:
                self._queue.remove(slot)
            raise
        if isinstance(slot.result, Exception):
            raise slot.result
        return slot.result  # type: ignore[return-value]

    async def _wait_for_company(self) -> None:
        """A small batch waits as ``linger()`` says for more items."""
        linger = self._linger()
        if linger is None:
            return
        with trio.move_on_after(linger.seconds):
            while len(self._queue) < linger.size:
                self._another = trio.Event()
                await self._another.wait()

    async def _write_queue(self) -> None:
        batch, self._queue = self._queue, []
        try:
            results = await self._write([s.item for s in batch])
        except Exception as exc:
            results = [exc] * len(batch)
        except BaseException:
            # Cancelled before the write started: the others are still waiting.
            self._queue[:0] = batch
            raise
        for waiting, result in zip(batch, results, strict=True):
            waiting.result = result
            waiting.done = True


@attrs.define(eq=False)
class Daemon:
    """All long-lived state of one ``smscd run``."""

    config: Config
    store: SqlStore
    pipeline: Pipeline
    links: dict[str, Link]
    notifier: Notifier = attrs.field(factory=Notifier)
    metrics: _metrics.Metrics = attrs.field(factory=_metrics.Metrics)
    db_limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(4))
    #: Hashing processes, one per core, niced below the event loop (see _hashing).
    hashing: HashProcesses = attrs.field(
        default=attrs.Factory(
            lambda self: HashProcesses(self.config.reset.hash, _cpu_count()), takes_self=True
        )
    )
    #: MO ids handed to a worker or resetter and not finished (so recovery skips them).
    in_progress: set[int] = attrs.field(factory=set)
    #: Held by the committer from its transaction until its MOs are in
    #: ``in_progress``, and by recovery while it claims: otherwise recovery can
    #: find an MO the intake just committed RECEIVED before the committer has
    #: handed it on, and it is decided (and its password hashed) twice.
    claiming: trio.Lock = attrs.field(factory=trio.Lock)
    #: Set when the committer left MOs RECEIVED for want of a free worker or
    #: resetter: recovery runs at once instead of at its next period.
    recovery_wanted: trio.Event = attrs.field(factory=trio.Event)
    senders: _Senders = attrs.field(factory=_Senders)
    #: Per carrier: where freshly committed replies go to be submitted.
    handoff: dict[str, trio.MemorySendChannel[OutboundMessage]] = attrs.field(factory=dict)
    stopping: bool = False
    intake_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    metrics_port: int | None = None
    #: What the status page shows that is not read live (see smscd.web).
    board: StatusBoard = attrs.field(factory=StatusBoard)
    #: The committer's channel, for the status page's intake backlog.
    intake_channel: trio.MemoryReceiveChannel[_Pending] | None = None
    #: Group commits: decisions (with their password, reply and charge) and the
    #: SMSC's acceptances of replies, each many per transaction under load.
    quick_decisions: _GroupCommit[InboundMessage, tuple[Decision, int | None] | _NeedsHash] = (
        attrs.field(init=False)
    )
    reset_commits: _GroupCommit[Decision, int | None] = attrs.field(init=False)
    #: Submitters between taking a reply and recording its verdict.
    submitting: int = 0
    #: The SMSC's acceptances not yet written (``accept_recorder``), and its wake-up.
    accepted: list[tuple[int, str, frozenset[str]]] = attrs.field(factory=list)
    accepted_waiting: trio.Event = attrs.field(factory=trio.Event)
    #: Held by whoever takes acceptances from ``accepted`` until they are written.
    accepting: trio.Lock = attrs.field(factory=trio.Lock)

    def __attrs_post_init__(self) -> None:
        self.quick_decisions = _GroupCommit(partial(self.db, self.decide_quickly))
        self.reset_commits = _GroupCommit(
            partial(self.db, self.commit_decisions), linger=self.reset_linger
        )

    def reset_linger(self) -> _Linger | None:
        """How hashed resets wait for company before their commit: in batches
        of ``RESET_BATCH_PER_HASHER`` per hashing process, while at least a
        batch of passwords waits for the processes. Then hashing is the
        bottleneck, a reset waits longer than the linger for its hash anyway,
        and one wake-up, thread hop and transaction for a batch (and, after
        it, one write of the submits to the SMSC) leaves more of the cores to
        argon2. Otherwise not at all (latency)."""
        batch = RESET_BATCH_PER_HASHER * self.hashing.count
        if self.hashing.waiting < batch:
            return None
        return _Linger(seconds=RESET_LINGER_S, size=batch)

    # --- plumbing ------------------------------------------------------------------

    async def db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.db_limiter)

    # --- intake --------------------------------------------------------------------

    async def intake(self, name: str, send: trio.MemorySendChannel[_Pending]) -> None:
        """Read one link's inbound MOs and receipts and hand them to the
        committer (which commits a batch, then acks)."""
        structlog.contextvars.bind_contextvars(carrier=name)
        link = self.links[name]
        async with send:
            async for item in link.inbound():
                if isinstance(item, InboundMo):
                    new = NewInbound(
                        carrier=name,
                        source_addr=item.source_addr,
                        source_addr_ton=item.source_addr_ton,
                        source_addr_npi=item.source_addr_npi,
                        msisdn=sender_key(item.source_addr, item.source_addr_ton),
                        destination_addr=item.destination_addr,
                        text=item.text,
                        received_at=datetime.now(UTC),
                    )
                    await send.send(_PendingMo(item=item, new=new))
                elif isinstance(item, InboundReceipt):
                    receipt = item.receipt
                    new_receipt = NewReceipt(
                        carrier=name,
                        message_id=receipt.message_id,
                        id_keys=item.id_keys,
                        stat=receipt.stat,
                        err=receipt.err,
                        final=receipt.final,
                        received_at=datetime.now(UTC),
                    )
                    await send.send(_PendingReceipt(item=item, new=new_receipt))

    async def committer(
        self,
        receive: trio.MemoryReceiveChannel[_Pending],
        send_decide: trio.MemorySendChannel[InboundMessage],
        send_reset: trio.MemorySendChannel[_Reset],
    ) -> None:
        """Group commit: one transaction for every MO and receipt waiting (and
        the decisions that can be made at once), then their acks: a 0 only for
        what was committed. Resets decided at once go to the resetters with
        their senders still held; the MOs left undecided go to the workers."""
        async with receive, send_decide, send_reset:
            async for first in receive:
                batch = await self.gather_intake(receive, first)
                mos = [p for p in batch if isinstance(p, _PendingMo)]
                receipts = [p for p in batch if isinstance(p, _PendingReceipt)]
                held = {m for m in {p.new.msisdn for p in mos} if self.senders.try_hold(m)}
                try:
                    async with self.claiming:
                        intake = await self.commit_pending(mos, receipts, held)
                        mos, receipts = intake.mos, intake.receipts
                        committed, resets = intake.committed, intake.resets
                        self.in_progress.update(
                            row.id
                            for row, decision, outbound_id in committed.messages
                            if row.state is not InboundState.DUPLICATE
                            and (decision is None or outbound_id is None)
                        )
                except BaseException as exc:
                    for msisdn in held:
                        self.senders.release(msisdn)
                    if not isinstance(exc, StoreError):
                        raise
                    # Invariant 1: nothing unstored is acknowledged with 0.
                    log.error(
                        "inbound_store_failed",
                        error=str(exc),
                        mos=len(mos),
                        receipts=len(receipts),
                    )
                    await ack_all([p.item for p in batch], CommandStatus.ESME_RX_T_APPN)
                    for pending in mos:
                        self.metrics.mo.labels(
                            carrier=pending.new.carrier, outcome="tempfail"
                        ).inc()
                    continue
                # Released before anything here waits: a worker may wait for one.
                for msisdn in held - {r.mo.msisdn for r in resets.values()}:
                    self.senders.release(msisdn)
                await ack_all([*(p.item for p in mos), *(p.item for p in receipts)], 0)
                await self.refuse(intake)
                for receipt, match in zip(receipts, committed.receipts, strict=True):
                    self.receipt_recorded(receipt.new, match)
                self.receipts_matched(committed.early)
                overflow: list[int] = []
                for row, decision, outbound_id in committed.messages:
                    if row.state is InboundState.DUPLICATE:
                        self.metrics.mo.labels(carrier=row.carrier, outcome="duplicate").inc()
                        log.info(
                            "mo_duplicate",
                            mo_id=row.id,
                            carrier=row.carrier,
                            msisdn=mask_msisdn(row.source_addr),
                        )
                    elif decision is not None and outbound_id is not None:
                        self.decided(row, decision, outbound_id)
                        if not self.hand_off_now(row, decision, outbound_id):
                            overflow.append(outbound_id)
                    elif row.id not in resets and not _offer(send_decide, row):
                        # No worker free: the row is durable; recovery takes it.
                        self.leave_for_recovery(row)
                for reset in resets.values():
                    if not _offer(send_reset, reset):
                        # No resetter free: decided again by a worker (a new
                        # password; this one was never hashed nor stored).
                        self.senders.release(reset.mo.msisdn)
                        self.leave_for_recovery(reset.mo)
                if overflow:
                    # No submitter free and the hand-off buffer full: let the
                    # claimer take these now rather than when their lease ends.
                    with contextlib.suppress(StoreError):
                        await self.db(self.store.release_leases, overflow)

    async def commit_pending(
        self,
        mos: list[_PendingMo],
        receipts: list[_PendingReceipt],
        held: set[str],
    ) -> _Intake:
        """``commit_intake`` of the batch. If the store refuses it for another
        reason than being unavailable (one item's data, or a bug that one
        item's data reaches), each item is committed alone, without the SMSC's
        acceptances (which go to the accept_recorder, which contains its own):
        the item that fails alone is refused, the others go on. Raises
        StoreUnavailable only when nothing was committed."""
        try:
            committed, resets = await self.commit_intake(
                [p.new for p in mos], [p.new for p in receipts], held
            )
            return _Intake(mos=mos, receipts=receipts, committed=committed, resets=resets)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.warning(
                "intake_batch_refused", error=_describe(exc), items=len(mos) + len(receipts)
            )
        intake = _Intake(mos=[], receipts=[], committed=InboundCommit(messages=[], receipts=[]))
        everything: list[_Pending] = [*mos, *receipts]
        for pending in everything:
            if intake.tempfail:
                intake.tempfail.append(pending)
                continue
            try:
                committed, resets = await self.commit_intake(
                    [pending.new] if isinstance(pending, _PendingMo) else [],
                    [pending.new] if isinstance(pending, _PendingReceipt) else [],
                    held,
                    with_accepted=False,
                )
            except StoreUnavailable:
                intake.tempfail.append(pending)
            except Exception as exc:
                intake.refused.append((pending, exc))
            else:
                if isinstance(pending, _PendingMo):
                    intake.mos.append(pending)
                else:
                    intake.receipts.append(pending)
                intake.committed.messages.extend(committed.messages)
                intake.committed.receipts.extend(committed.receipts)
                intake.committed.early.extend(committed.early)
                intake.resets.update(resets)
        return intake

    async def refuse(self, intake: _Intake) -> None:
        """Answer what ``commit_pending`` could not commit: ESME_RX_P_APPN (0x65) for
        an item the store refuses (the SMSC would redeliver it to the same
        end), ESME_RX_T_APPN for the rest of a batch the store went down in."""
        for pending, exc in intake.refused:
            self.metrics.poison.labels(stage="intake").inc()
            if isinstance(pending, _PendingMo):
                log.error(
                    "mo_refused",
                    stage="intake",
                    carrier=pending.new.carrier,
                    msisdn=mask_msisdn(pending.new.source_addr),
                    error=_describe(exc),
                )
            else:
                log.error(
                    "receipt_refused",
                    stage="intake",
                    carrier=pending.new.carrier,
                    message_id=pending.new.message_id[:64],
                    error=_describe(exc),
                )
        if intake.refused:
            await ack_all([p.item for p, _exc in intake.refused], CommandStatus.ESME_RX_P_APPN)
        if intake.tempfail:
            log.error("inbound_store_failed", mos=len(intake.tempfail), receipts=0)
            await ack_all([p.item for p in intake.tempfail], CommandStatus.ESME_RX_T_APPN)

    def leave_for_recovery(self, mo: InboundMessage) -> None:
        """An MO the committer could not hand on without waiting: it stays
        RECEIVED in the store, and recovery, woken now, feeds it to a worker
        (the committer never waits for the stages after it)."""
        self.in_progress.discard(mo.id)
        self.recovery_wanted.set()

    async def gather_intake(
        self, receive: trio.MemoryReceiveChannel[_Pending], first: _Pending
    ) -> list[_Pending]:
        """``first`` and what else is waiting, up to ``intake_batch``. A few
        receipts and no MO wait up to ``RECEIPT_LINGER_S`` for more, so that at
        low rates a receipt rides with the next MO's transaction instead of
        taking one of its own; an MO ends the wait at once."""
        batch = [first]
        limit = self.config.intake_batch

        def take_waiting() -> None:
            while len(batch) < limit:
                try:
                    batch.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    return

        take_waiting()
        with trio.move_on_after(RECEIPT_LINGER_S):
            while len(batch) < min(limit, LINGER_BELOW) and not any(
                isinstance(p, _PendingMo) for p in batch
            ):
                try:
                    batch.append(await receive.receive())
                except trio.EndOfChannel:
                    break
                take_waiting()
        return batch

    async def commit_intake(
        self,
        mos: Sequence[NewInbound],
        receipts: Sequence[NewReceipt],
        held: set[str],
        *,
        with_accepted: bool = True,
    ) -> tuple[InboundCommit, dict[int, _Reset]]:
        """``intake_batch`` in a thread, with the SMSC's acceptances waiting:
        they go first in its transaction, so that its receipts find their
        replies accepted. Taken under ``accepting``, as the accept_recorder
        takes them, so that no acceptance taken before this transaction is
        written after it. On failure they go back to the accept_recorder."""
        async with self.accepting:
            accepted = self.take_accepted() if with_accepted else []
            try:
                return await self.db(self.intake_batch, mos, receipts, held, accepted)
            except BaseException:
                self.accepted[:0] = accepted
                if accepted:
                    self.accepted_waiting.set()
                raise

    def intake_batch(
        self,
        mos: Sequence[NewInbound],
        receipts: Sequence[NewReceipt],
        held: set[str],
        accepted: Sequence[tuple[int, str, frozenset[str]]] = (),
    ) -> tuple[InboundCommit, dict[int, _Reset]]:
        """Blocking: commit a batch of MOs and receipts, with the decisions
        made in the same transaction (``decide_at_once``) and the SMSC's
        acceptances waiting; return it with the resets it decided, by MO id,
        which stay RECEIVED until their hash is committed."""
        resets: dict[int, _Reset] = {}
        committed = self.store.commit_inbound(
            mos,
            receipts,
            duplicate_window_s=self.config.reset.duplicate_window,
            decide=partial(self.decide_at_once, free_senders=set(held), resets=resets),
            lease_s=OUTBOX_LEASE_S,
            accepted=accepted,
            now=datetime.now(UTC),
        )
        return committed, resets

    def receipt_recorded(self, receipt: NewReceipt, match: ReceiptMatch | None) -> None:
        """Count and log a committed receipt; with the MO id and masked phone of
        the request it answers when it matched a reply (not yet: one that came
        before its submit_sm_resp was recorded)."""
        self.metrics.receipts.labels(carrier=receipt.carrier, stat=receipt.stat).inc()
        request = (
            {}
            if match is None
            else {"mo_id": match.mo_id, "msisdn": mask_msisdn(match.destination_addr)}
        )
        log.info(
            "receipt_received",
            carrier=receipt.carrier,
            message_id=receipt.message_id,
            stat=receipt.stat,
            err=receipt.err,
            outbound_id=match.outbound_id if match is not None else None,
            **request,
        )

    def receipts_matched(self, early: Iterable[EarlyReceipt]) -> None:
        """Log the receipts that came before their reply's acceptance, now that
        it matched them: ``receipt_received`` could not name their request."""
        for receipt in early:
            log.info(
                "receipt_matched",
                carrier=receipt.carrier,
                receipt_id=receipt.receipt_id,
                stat=receipt.stat,
                outbound_id=receipt.match.outbound_id,
                mo_id=receipt.match.mo_id,
                msisdn=mask_msisdn(receipt.match.destination_addr),
            )

    def decide_at_once(
        self,
        batch: Sequence[InboundMessage],
        *,
        free_senders: set[str],
        resets: dict[int, _Reset],
    ) -> list[Decision | None]:
        """Blocking, inside the intake transaction: the decisions of ``batch``
        to commit with it; None for the MOs to leave RECEIVED. A reset (the
        registered phone, within its limits: only for a sender in
        ``free_senders``, which the committer holds) is left RECEIVED too and
        put in ``resets``: its password is hashed and committed after this
        transaction, and the counts it was checked against cannot change
        meanwhile, as its sender stays held. An MO of a sender with another
        decision in progress is left to a worker."""
        catcher = _PasswordCatcher()
        answers: list[Decision | None] = []
        failed: list[StoreError] = []
        for mo, outcome in zip(
            batch, self.decide_each(batch, catcher, free_senders=free_senders), strict=True
        ):
            # An ItemFailed is left RECEIVED too: a worker meets it again and
            # quarantines that MO alone.
            if isinstance(outcome, StoreError):
                failed.append(outcome)
            if not isinstance(outcome, Decision):
                answers.append(None)
            elif catcher.password is not None:
                resets[mo.id] = _Reset(mo, _NeedsHash(decision=outcome, password=catcher.password))
                answers.append(None)
            else:
                answers.append(outcome)
            catcher.password = None
        if failed:
            # Left RECEIVED: the workers decide them.
            log.warning("intake_lookup_failed", error=str(failed[0]), count=len(failed))
        return answers

    def decide_each(
        self,
        batch: Sequence[InboundMessage],
        hasher: Hasher,
        *,
        free_senders: set[str] | None = None,
    ) -> Iterator[Decision | StoreError | _OwnerWaits | ItemFailed]:
        """Blocking: ``Pipeline.decide`` for each MO of ``batch`` in turn (lazily:
        a caller may look at its hasher between two), the batch's accounts read
        in one query first; each MO's decision, or the exception that stopped it
        (any other than the store's and ``_OwnerWaits`` as ItemFailed: that
        MO's own, never its batch's)."""
        try:
            store = _BatchReads.prefetch(
                self.store, (mo.text for mo in batch), free_senders=free_senders
            )
        except StoreError as exc:
            yield from (exc for _mo in batch)
            return
        except Exception as exc:
            # One text the prefetch chokes on: each MO reads its own account.
            log.warning("decision_prefetch_failed", error=_describe(exc), mos=len(batch))
            store = _BatchReads(self.store, {}, free_senders)
        pipeline = attrs.evolve(self.pipeline, hasher=hasher)
        for mo in batch:
            try:
                yield pipeline.decide(
                    mo, store, charging=self.charging(mo.carrier), charge_vnd=self.config.charge_vnd
                )
            except (_OwnerWaits, StoreError) as exc:
                yield exc
            except Exception as exc:
                yield ItemFailed(exc)

    def charging(self, carrier: str) -> ChargingMode:
        smsc = self.config.smsc(carrier) if carrier in self.links else None
        return smsc.charging if smsc is not None else self.config.smscs[0].charging

    # --- decisions -------------------------------------------------------------------

    async def worker(self, receive_decide: trio.MemoryReceiveChannel[InboundMessage]) -> None:
        async with receive_decide:
            async for mo in receive_decide:
                try:
                    await self.senders.hold(mo.msisdn)
                    try:
                        await self.decide(mo)
                    except Exception as exc:
                        # One MO's failure is that MO's: the worker goes on.
                        await self.quarantine_mo(mo, "decide", exc)
                    finally:
                        self.senders.release(mo.msisdn)
                finally:
                    self.in_progress.discard(mo.id)

    async def resetter(self, receive_reset: trio.MemoryReceiveChannel[_Reset]) -> None:
        """Hash and commit the resets decided at intake, then release their
        senders. Never waits for a sender, so the workers that wait for one
        always see it released."""
        async with receive_reset:
            async for reset in receive_reset:
                try:
                    await self.finish_reset(reset.mo, reset.reset)
                except Exception as exc:
                    await self.quarantine_mo(reset.mo, "reset", exc)
                finally:
                    self.senders.release(reset.mo.msisdn)
                    self.in_progress.discard(reset.mo.id)

    async def decide(self, mo: InboundMessage) -> None:
        """Decide and commit one MO (a worker's, its sender held).

        First pass, batched with the other workers' MOs (one thread hop and one
        transaction for the batch): decide with a hasher that only catches the
        new password, and commit the decisions that set none. A reset (the owner
        of the code, within the limits) comes back with its password and is
        finished like one decided at intake (``finish_reset``)."""
        try:
            quick = await self.quick_decisions.submit(mo)
        except ItemFailed as exc:
            await self.quarantine_mo(mo, "decide", exc.cause)
            return
        except StoreRejected as exc:
            await self.quarantine_mo(mo, "decide", exc)
            return
        except StoreError as exc:
            # The MO stays RECEIVED; recovery retries it.
            log.warning("reset_step_failed", mo_id=mo.id, error=str(exc))
            return
        if isinstance(quick, _NeedsHash):
            await self.finish_reset(mo, quick)
            return
        await self.committed(mo, *quick)

    async def finish_reset(self, mo: InboundMessage, reset: _NeedsHash) -> None:
        """Hash the new password in a hashing process, then commit the reset
        with the others waiting (``reset_commits``); its sender is held."""
        try:
            password_hash, cpu_s = await self.hashing.hash(reset.password)
            self.metrics.hash_cpu.observe(cpu_s)
            decision = attrs.evolve(reset.decision, password_hash=password_hash)
            outbound_id = await self.reset_commits.submit(decision)
        except StoreRejected as exc:
            await self.quarantine_mo(mo, "reset", exc)
            return
        except (StoreError, HashFailed) as exc:
            # The MO stays RECEIVED; recovery decides it again (a new password).
            log.warning("reset_step_failed", mo_id=mo.id, error=str(exc))
            return
        await self.committed(mo, decision, outbound_id)

    async def committed(
        self, mo: InboundMessage, decision: Decision, outbound_id: int | None
    ) -> None:
        """Count and log a decision a worker or resetter committed, and hand its
        reply to the submitters without waiting: if they are all busy and
        their buffer is full, its lease is freed and the claimer sends it. A
        decision never waits for the SMSC (a resetter that did would hold up
        the intake behind it). No outbound id: another daemon decided it."""
        if outbound_id is None:
            return
        self.decided(mo, decision, outbound_id)
        if not self.hand_off_now(mo, decision, outbound_id):
            with contextlib.suppress(StoreError):
                await self.db(self.store.release_leases, [outbound_id])

    async def quarantine_mo(self, mo: InboundMessage, stage: str, exc: Exception) -> None:
        """Set one MO aside after its processing failed at ``stage``: logged
        with its id, counted (``smscd_poison_total``), QUARANTINED in the
        store with the reason. If even that write fails, the MO stays
        RECEIVED and recovery meets it again."""
        reason = _describe(exc)
        self.metrics.poison.labels(stage=stage).inc()
        log.error(
            "mo_quarantined",
            mo_id=mo.id,
            carrier=mo.carrier,
            msisdn=mask_msisdn(mo.source_addr),
            stage=stage,
            reason=reason,
        )
        with trio.CancelScope(shield=True):
            try:
                await self.db(
                    self.store.quarantine_inbound,
                    [mo.id],
                    stage=stage,
                    reason=reason,
                    now=datetime.now(UTC),
                )
            except StoreError as store_exc:
                log.error("quarantine_failed", mo_id=mo.id, error=str(store_exc))

    async def quarantine_reply(self, row: OutboundMessage, stage: str, exc: Exception) -> None:
        """``quarantine_mo`` for a reply (its lease is freed with it)."""
        reason = _describe(exc)
        self.metrics.poison.labels(stage=stage).inc()
        log.error(
            "mt_quarantined",
            outbound_id=row.id,
            mo_id=row.inbound_id,
            carrier=row.carrier,
            msisdn=mask_msisdn(row.destination_addr),
            stage=stage,
            reason=reason,
        )
        with trio.CancelScope(shield=True):
            try:
                await self.db(
                    self.store.quarantine_outbound,
                    [row.id],
                    stage=stage,
                    reason=reason,
                    now=datetime.now(UTC),
                )
            except StoreError as store_exc:
                log.error("quarantine_failed", outbound_id=row.id, error=str(store_exc))

    def decided(self, mo: InboundMessage, decision: Decision, outbound_id: int) -> None:
        """Count and log a committed decision."""
        outcome = decision.outcome.value
        self.metrics.mo.labels(carrier=mo.carrier, outcome=outcome).inc()
        if decision.charging is ChargingMode.MO:
            self.metrics.charges.labels(carrier=mo.carrier).inc(decision.charge_vnd)
        msisdn = mask_msisdn(mo.source_addr)
        log.info(
            "reset_decided",
            mo_id=mo.id,
            carrier=mo.carrier,
            msisdn=msisdn,
            outcome=outcome,
            outbound_id=outbound_id,
        )
        # Committed with the decision: a step of the reply's own.
        log.info(
            "mt_queued", outbound_id=outbound_id, mo_id=mo.id, carrier=mo.carrier, msisdn=msisdn
        )

    def hand_off_now(self, mo: InboundMessage, decision: Decision, outbound_id: int) -> bool:
        """Give a reply just committed (born leased to us) straight to its
        carrier's submitters: no claim transaction on the common path. False
        if they are all busy and their buffer is full (the caller frees the
        lease). If the outbox is gone (stopping), the lease runs out and a
        claimer sends the reply."""
        channel = self.handoff.get(mo.carrier)
        if channel is None:
            return True
        try:
            channel.send_nowait(_reply_row(mo, decision, outbound_id))
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return True

    def decide_quickly(
        self, batch: Sequence[InboundMessage]
    ) -> list[tuple[Decision, int | None] | _NeedsHash | Exception]:
        """Blocking: the first pass of ``decide`` for a batch (see there)."""
        catcher = _PasswordCatcher()
        results: list[tuple[Decision, int | None] | _NeedsHash | Exception] = []
        decided: list[tuple[int, Decision]] = []
        for first_pass in self.decide_each(batch, catcher):
            if not isinstance(first_pass, Decision):
                results.append(first_pass)
            elif catcher.password is not None:
                # A reset: the pipeline hashed (we only caught the password).
                results.append(_NeedsHash(decision=first_pass, password=catcher.password))
            else:
                decided.append((len(results), first_pass))
                results.append(StoreError("not committed"))  # replaced below
            catcher.password = None
        if decided:
            committed = self.commit_decisions([decision for _i, decision in decided])
            for (i, decision), outcome in zip(decided, committed, strict=True):
                results[i] = outcome if isinstance(outcome, Exception) else (decision, outcome)
        return results

    def commit_decisions(self, decisions: Sequence[Decision]) -> list[int | Exception | None]:
        """Blocking: one transaction for the batch; if it fails for another
        reason than the database (a decision it cannot apply), each decision
        alone, so that one bad decision does not hold back the others."""
        for decision in decisions:
            if decision.password_hash == _HASH_PENDING:
                raise RuntimeError("a decision reached its commit without its password hash")
        try:
            return list(self.store.commit_decisions(decisions, lease_s=OUTBOX_LEASE_S))
        except StoreUnavailable:
            raise
        except StoreError:
            if len(decisions) == 1:
                raise
        results: list[int | Exception | None] = []
        for decision in decisions:
            try:
                results.extend(self.store.commit_decisions([decision], lease_s=OUTBOX_LEASE_S))
            except StoreError as exc:
                results.append(exc)
        return results

    async def recovery(self, send_decide: trio.MemorySendChannel[InboundMessage]) -> None:
        """Feed MOs left RECEIVED (a crash after the ack, a store error while
        deciding) back to the workers; at start, then every few seconds."""
        async with send_decide:
            while True:
                async with self.claiming:
                    try:
                        rows, quarantined = await self.db(
                            self.store.recover_inbound,
                            limit=RECOVERY_BATCH,
                            now=datetime.now(UTC),
                            stale_s=CLAIM_STALE_S,
                        )
                    except StoreError as exc:
                        log.warning("recovery_failed", error=str(exc))
                        rows, quarantined = [], []
                    self.abandoned(quarantined)
                    rows = [
                        row
                        for row in rows
                        if row.id not in self.in_progress and row.carrier in self.links
                    ]
                    self.in_progress.update(row.id for row in rows)
                for row in rows:
                    log.info("mo_recovered", mo_id=row.id, carrier=row.carrier)
                    await send_decide.send(row)
                if len(rows) < RECOVERY_BATCH:
                    with trio.move_on_after(RECOVERY_PERIOD_S):
                        await self.recovery_wanted.wait()
                self.recovery_wanted = trio.Event()

    # --- outbox ----------------------------------------------------------------------

    async def outbox(self, name: str) -> None:
        """Claim queued replies of one carrier and submit them, ``window`` at a time."""
        structlog.contextvars.bind_contextvars(carrier=name)
        link_config = self.links[name].config
        # A window's worth of replies may wait for a free submitter (the
        # committer hands off without waiting; see hand_off_now).
        send_row, receive_row = trio.open_memory_channel[OutboundMessage](link_config.window)
        self.handoff[name] = send_row.clone()
        async with trio.open_nursery() as nursery:
            for _ in range(link_config.window):
                nursery.start_soon(self.submitter, name, receive_row.clone())
            receive_row.close()
            async with send_row:
                while not self.stopping:
                    try:
                        rows, quarantined = await self.db(
                            self.store.lease_outbound,
                            carrier=name,
                            now=datetime.now(UTC),
                            limit=link_config.window,
                            lease_s=OUTBOX_LEASE_S,
                        )
                    except StoreError as exc:
                        log.warning("outbox_claim_failed", error=str(exc))
                        rows, quarantined = [], []
                    self.abandoned(quarantined)
                    for row in rows:
                        await send_row.send(row)
                    if len(rows) < link_config.window:
                        await trio.sleep(OUTBOX_POLL_S)

    async def submitter(
        self, name: str, receive_row: trio.MemoryReceiveChannel[OutboundMessage]
    ) -> None:
        smsc = self.config.smsc(name)
        link = self.links[name]
        async with receive_row:
            async for row in receive_row:
                self.submitting += 1
                try:
                    message = OutboundSm(
                        source_addr=self.config.short_code,
                        source_addr_ton=smsc.source_ton,
                        source_addr_npi=smsc.source_npi,
                        destination_addr=row.destination_addr,
                        dest_addr_ton=row.dest_addr_ton,
                        dest_addr_npi=row.dest_addr_npi,
                        text=row.body,
                    )
                    result = await link.submit(message)
                except Exception as exc:
                    # A reply that cannot be submitted at all (not encodable):
                    # that reply's failure, not the submitter's.
                    await self.quarantine_reply(row, "submit", exc)
                    continue
                else:
                    await self.settle(name, row, result)
                finally:
                    self.submitting -= 1

    async def settle(
        self, name: str, row: OutboundMessage, result: Accepted | RetryLater | Rejected
    ) -> None:
        now = datetime.now(UTC)
        # The verdict must be recorded even while we are being stopped: it is
        # what keeps a reply from being sent twice.
        with trio.CancelScope(shield=True):
            try:
                match result:
                    case Accepted(message_id=message_id, id_keys=id_keys):
                        # Written by the committer's next transaction or the
                        # accept_recorder: the submitter goes on meanwhile.
                        self.accepted.append((row.id, message_id, id_keys))
                        self.accepted_waiting.set()
                        self.metrics.mt.labels(carrier=name, state="accepted").inc()
                        # The SMSC's message id: what a carrier's support asks for.
                        log.info(
                            "mt_accepted",
                            outbound_id=row.id,
                            mo_id=row.inbound_id,
                            message_id=message_id,
                            msisdn=mask_msisdn(row.destination_addr),
                        )
                    case RetryLater(status=status, reason=reason):
                        delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** min(row.attempts, 10))
                        delay *= random.uniform(0.8, 1.2)
                        await self.db(
                            self.store.mark_retry,
                            row.id,
                            status=status,
                            next_attempt_at=now + timedelta(seconds=delay),
                        )
                        self.metrics.mt.labels(carrier=name, state="retry").inc()
                        log.info(
                            "mt_retry_scheduled",
                            outbound_id=row.id,
                            reason=reason,
                            status=status,
                            delay=round(delay, 1),
                        )
                    case Rejected(status=status):
                        await self.db(self.store.mark_failed, row.id, status=status, now=now)
                        self.metrics.mt.labels(carrier=name, state="failed").inc()
                        log.warning(
                            "mt_rejected",
                            outbound_id=row.id,
                            mo_id=row.inbound_id,
                            status=f"0x{status:08x}",
                        )
            except StoreRejected as exc:
                await self.quarantine_reply(row, "settle", exc)
            except StoreError as exc:
                # The lease expires and the row is claimed again.
                log.error("mt_settle_failed", outbound_id=row.id, error=str(exc))
            except Exception as exc:
                await self.quarantine_reply(row, "settle", exc)

    async def accept_recorder(self) -> None:
        """Group commit of the SMSC's acceptances: every one waiting, in one
        transaction (a small batch waits a little for more first: nobody waits
        on these), unless the committer's next transaction took them first. A
        crash before it is written means that reply is sent again after its
        lease, as for a crash between the submit and its response."""
        while True:
            await self.accepted_waiting.wait()
            self.accepted_waiting = trio.Event()
            if len(self.accepted) < LINGER_BELOW:
                await trio.sleep(SETTLE_LINGER_S)
            await self.write_accepted()

    async def write_accepted(self) -> None:
        """Write the acceptances waiting; shielded, since a recorded acceptance
        is what keeps a reply from being sent twice."""
        while self.accepted:
            async with self.accepting:
                batch = self.take_accepted()
                if not batch:
                    break  # the committer took them meanwhile
                with trio.CancelScope(shield=True):
                    try:
                        self.receipts_matched(await self.db(self.mark_accepted, batch))
                    except StoreUnavailable as exc:
                        # Their leases expire and the replies are claimed again.
                        log.error("mt_settle_failed", count=len(batch), error=str(exc))
                    except Exception as exc:
                        log.warning("accept_batch_refused", error=_describe(exc), count=len(batch))
                        await self.accept_one_by_one(batch)

    async def accept_one_by_one(self, batch: Sequence[tuple[int, str, frozenset[str]]]) -> None:
        """The acceptances of a batch the store refused, each alone. One it
        refuses again is recorded without the SMSC's message id (the reply was
        sent: it must be ACCEPTED, its body masked, never sent again; only its
        receipt will not match), counted as poison (stage ``accept``)."""
        for outbound_id, message_id, id_keys in batch:
            try:
                self.receipts_matched(
                    await self.db(self.mark_accepted, [(outbound_id, message_id, id_keys)])
                )
                continue
            except StoreUnavailable as exc:
                log.error("mt_settle_failed", outbound_id=outbound_id, error=str(exc))
                continue
            except Exception as exc:
                self.metrics.poison.labels(stage="accept").inc()
                log.error(
                    "mt_accepted_without_id",
                    outbound_id=outbound_id,
                    stage="accept",
                    error=_describe(exc),
                )
            try:
                await self.db(self.mark_accepted, [(outbound_id, "", frozenset())])
            except StoreError as exc:
                log.error("mt_settle_failed", outbound_id=outbound_id, error=str(exc))

    def abandoned(self, quarantined: Iterable[QuarantinedItem]) -> None:
        """Log and count the items recovery or the claimer set aside because
        two daemons in a row stopped while holding them (see
        ``smscd.store._containment``)."""
        for item in quarantined:
            self.metrics.poison.labels(stage="recovery").inc()
            log.error(
                "mo_quarantined" if item.kind == "mo" else "mt_quarantined",
                **({"mo_id": item.id} if item.kind == "mo" else {"outbound_id": item.id}),
                carrier=item.carrier,
                msisdn=mask_msisdn(item.address),
                stage=item.stage,
                reason=item.reason,
            )

    async def expirer(self) -> None:
        """Expire the replies not accepted in time (``[outbox] reply_expiry``,
        ``max_attempts``): nobody gets a stale password."""
        outbox = self.config.outbox
        while True:
            try:
                expired = await self.db(
                    self.store.expire_replies,
                    now=datetime.now(UTC),
                    max_age_s=outbox.reply_expiry,
                    max_attempts=outbox.max_attempts,
                )
            except StoreError as exc:
                log.warning("expiry_failed", error=str(exc))
                expired = []
            for reply in expired:
                self.metrics.mt.labels(carrier=reply.carrier, state="expired").inc()
                log.warning(
                    "mt_expired",
                    outbound_id=reply.outbound_id,
                    mo_id=reply.inbound_id,
                    carrier=reply.carrier,
                    msisdn=mask_msisdn(reply.destination_addr),
                    attempts=reply.attempts,
                )
            if len(expired) < EXPIRY_BATCH:
                await trio.sleep(EXPIRY_PERIOD_S)

    def take_accepted(self) -> list[tuple[int, str, frozenset[str]]]:
        """The acceptances waiting, at most a batch, out of ``accepted``; the
        caller holds ``accepting`` until they are written."""
        taken = self.accepted[: self.config.intake_batch]
        del self.accepted[: len(taken)]
        return taken

    def mark_accepted(
        self, accepted: Sequence[tuple[int, str, frozenset[str]]]
    ) -> list[EarlyReceipt]:
        """Blocking: the SMSC's acceptances in one transaction."""
        return self.store.mark_accepted_many(accepted, now=datetime.now(UTC))

    # --- operations ------------------------------------------------------------------

    async def watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            await self.notifier.notify("WATCHDOG=1")
            await trio.sleep(interval)

    async def refresh_gauges(self) -> None:
        while True:
            try:
                depth = await self.db(self.store.outbox_depth)
                for name in self.links:
                    self.metrics.outbox_depth.labels(carrier=name).set(depth.get(name, 0))
            except StoreError:
                pass
            for name, link in self.links.items():
                stats = link.statistics()
                self.metrics.link_up.labels(carrier=name).set(1 if stats.bound else 0)
                self.metrics.window_in_use.labels(carrier=name).set(stats.in_flight)
                self.metrics.inbound_held.labels(carrier=name).set(stats.inbound_held)
                self.metrics.inbound_paused.labels(carrier=name).set(stats.inbound_paused)
            await trio.sleep(1.0)

    async def maintenance(self) -> None:
        """Truncate SQLite's WAL now and then (see SqlStore.checkpoint)."""
        while True:
            await trio.sleep(CHECKPOINT_PERIOD_S)
            try:
                await self.db(self.store.checkpoint)
            except StoreError as exc:
                log.warning("checkpoint_failed", error=str(exc))

    async def health_problems(self) -> list[str]:
        """``/healthz``: why the daemon is not healthy (every link bound, the
        store answering), one line each; empty when it is."""
        problems = [
            f"link {n} not bound" for n, link in self.links.items() if not link.statistics().bound
        ]
        try:
            with trio.fail_after(STORE_CHECK_S):
                await self.db(self.store.outbox_depth)
        except (StoreError, trio.TooSlowError) as exc:
            problems.append(f"store: {exc or 'no answer'}")
        return problems

    def metrics_text(self) -> bytes:
        """``/metrics``: the Prometheus text of the daemon's registry."""
        return self.metrics.render()

    async def status(self) -> StatusSnapshot:
        """``/status.json`` and the page: links, queues and the last hour read
        now, the outbox from the store (which says whether it answers), and
        the last 30 days from the store at most once a minute (as the board
        says: mostly its last two days). A store that does not answer in time
        is abandoned to its thread (the page must not hang on it) and shown as
        not answering."""

        async def query(seconds: float, fn: Callable[..., T], **kwargs: object) -> T:
            with trio.fail_after(seconds):
                return await trio.to_thread.run_sync(
                    partial(fn, **kwargs), limiter=self.db_limiter, abandon_on_cancel=True
                )

        now = datetime.now(UTC)
        depth: Mapping[str, int] = {}
        oldest_s: float | None = None
        store = StoreStatus(ok=True)
        try:
            depth, oldest = await query(
                STORE_CHECK_S, self.store.outbox_summary, carriers=list(self.links)
            )
            oldest_s = (now - oldest).total_seconds() if oldest is not None else None
        except (StoreError, trio.TooSlowError) as exc:
            store = StoreStatus(ok=False, error=str(exc) or f"no answer within {STORE_CHECK_S} s")
        start = self.board.daily_turn(now) if store.ok else None
        if start is not None:
            try:
                rows = await query(DAILY_QUERY_S, self.store.daily_activity, start=start)
            except (StoreError, trio.TooSlowError) as exc:
                log.warning("status_query_failed", error=str(exc) or "no answer in time")
            else:
                self.board.set_daily(
                    start,
                    (
                        DayActivity(
                            day=r.day, carrier=r.carrier, resets=r.resets, charges_vnd=r.charges_vnd
                        )
                        for r in rows
                    ),
                )
        backlog = sum(
            link.inbound().statistics().current_buffer_used for link in self.links.values()
        )
        if self.intake_channel is not None:
            backlog += self.intake_channel.statistics().current_buffer_used
        return self.board.snapshot(
            now=now,
            totals=self.metrics.totals(),
            links=self.link_statistics(),
            queues=QueueStatus(
                outbox_depth=sum(depth.values()),
                outbox_oldest_s=oldest_s,
                hashing_queue=self.hashing.waiting,
                intake_backlog=backlog,
            ),
            store=store,
        )

    def link_statistics(self) -> list[LinkStatistics]:
        return [link.statistics() for link in self.links.values()]

    def reload(self) -> None:
        """SIGHUP: reply texts and rate limits from the same file; a bad file is
        logged and the running configuration kept."""
        try:
            fresh = load_config(Path(self.config.source))
        except ConfigError as exc:
            log.error("config_reload_failed", error=str(exc))
            return
        self.pipeline.reload(fresh.reset, fresh.templates)
        self.hashing.reconfigure(fresh.reset.hash)
        self.config = attrs.evolve(self.config, reset=fresh.reset, templates=fresh.templates)
        log.info("config_reloaded")

    async def signals(self, stop: trio.Event) -> None:
        """SIGHUP reloads; the first SIGTERM or SIGINT starts the stop. The
        receiver stays open while the stop runs: a second signal (Ctrl-C
        reaches a whole process group, operators signal twice) is logged and
        ignored, instead of falling to its default action, which would kill
        the daemon before its unbind."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if stop.is_set():
                    log.info("shutdown_in_progress", signal=name)
                elif signum == signal.SIGHUP:
                    self.reload()
                else:
                    log.info("shutdown_requested", signal=name)
                    stop.set()

    async def shutdown(self) -> None:
        """Stop intake, finish what is in hand, unbind every link."""
        await self.notifier.notify("STOPPING=1")
        self.stopping = True
        self.intake_scope.cancel()
        # Let decisions and submits in flight settle, bounded.
        with trio.move_on_after(STOP_DRAIN_S):
            while self.in_progress:  # noqa: ASYNC110 - many tasks change the set; bounded above
                await trio.sleep(0.05)
        async with trio.open_nursery() as nursery:
            for link in self.links.values():
                nursery.start_soon(link.stop)
        # The submits the links finished while stopping have their verdicts
        # recorded by their submitters; then the acceptances still waiting
        # are written, so that no accepted reply is sent again after a restart.
        with trio.move_on_after(STOP_DRAIN_S):
            while self.submitting:  # noqa: ASYNC110 - many tasks change it; bounded above
                await trio.sleep(0.01)
        await self.write_accepted()
        with trio.move_on_after(STOP_DRAIN_S, shield=True):
            try:
                mos, replies = await self.db(self.store.release_own)
                log.info("claims_released", mos=mos, replies=replies)
            except StoreError as exc:
                log.warning("claims_release_failed", error=str(exc))
        log.info("daemon_stopped")

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        stop = trio.Event()
        async with trio.open_nursery() as root:
            root.start_soon(self.signals, stop)
            await root.start(self.hashing.run)
            for link in self.links.values():
                await root.start(link.run)
            send_inbound, receive_inbound = trio.open_memory_channel[_Pending](
                self.config.intake_batch
            )
            send_decide, receive_decide = trio.open_memory_channel[InboundMessage](0)
            send_reset, receive_reset = trio.open_memory_channel[_Reset](0)
            self.intake_channel = receive_inbound
            async with (
                send_inbound,
                receive_inbound,
                send_decide,
                receive_decide,
                send_reset,
                receive_reset,
            ):
                root.start_soon(self._run_intake, send_inbound.clone())
                root.start_soon(self.accept_recorder)
                root.start_soon(
                    self.committer,
                    receive_inbound.clone(),
                    send_decide.clone(),
                    send_reset.clone(),
                )
                for _ in range(self.hashing.count * RESETTERS_PER_HASHER):
                    root.start_soon(self.resetter, receive_reset.clone())
                for _ in range(self.config.workers or _cpu_count() * WORKERS_PER_CORE):
                    root.start_soon(self.worker, receive_decide.clone())
                root.start_soon(self.recovery, send_decide.clone())
            for name in self.links:
                root.start_soon(self.outbox, name)
            root.start_soon(self.watchdog)
            root.start_soon(self.refresh_gauges)
            root.start_soon(self.maintenance)
            root.start_soon(self.expirer)
            root.start_soon(run_sampler, self.board, self.metrics.totals, self.link_statistics)
            if self.config.metrics_listen:
                app = create_app(self, token=self.config.metrics_token)
                self.metrics_port = await root.start(serve_web, app, self.config.metrics_listen)
            await self.notifier.notify("READY=1", "STATUS=serving")
            log.info("daemon_ready", carriers=list(self.links), metrics_port=self.metrics_port)
            task_status.started()
            await stop.wait()
            await self.shutdown()
            root.cancel_scope.cancel()

    async def _run_intake(self, send: trio.MemorySendChannel[_Pending]) -> None:
        with self.intake_scope:
            async with send, trio.open_nursery() as nursery:
                for name in self.links:
                    nursery.start_soon(self.intake, name, send.clone())


def _offer(channel: trio.MemorySendChannel[T], item: T) -> bool:
    """Hand ``item`` on if a receiver is free now; False (never waiting) if not."""
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        return False
    return True


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def build(config: Config, *, board: StatusBoard | None = None) -> Daemon:
    store = open_store(config.database_url)
    pipeline = Pipeline(policy=config.reset, templates=config.templates, hasher=_HashesElsewhere())
    links = {smsc.name: Link(smsc.link) for smsc in config.smscs}
    return Daemon(
        config=config, store=store, pipeline=pipeline, links=links, board=board or StatusBoard()
    )


def run(config: Config) -> int:
    """``smscd run``: returns the process exit code."""
    # The status page's last warnings are kept from the first line logged.
    board = StatusBoard()
    configure_logging(format=config.log.format, level=config.log.level, sink=board.events)
    database = sqlite_path(config.database_url)
    lock = DaemonLock(database) if database is not None else None
    try:
        if lock is not None:
            lock.acquire()
        daemon = build(config, board=board)
    except AlreadyRunning as exc:
        log.error("daemon_already_running", error=str(exc))
        return 2
    except SchemaNotCurrent as exc:
        log.error("database_not_migrated", error=str(exc))
        return 2
    except StoreError as exc:
        log.error("database_unavailable", error=str(exc))
        return 1
    try:
        if lock is not None:
            # Sole user of this SQLite store: MOs and leases still held are a
            # killed predecessor's. Each counts a claim (an item two dead
            # daemons held is quarantined when taken up, never run a third
            # time), and is freed instead of waited out.
            mos, replies = daemon.store.release_abandoned()
            if mos or replies:
                log.info("abandoned_claims_released", mos=mos, replies=replies)
        # What was imported and built so far lives as long as the process:
        # out of the collector's sight, a full collection walks about 7,000
        # objects instead of 100,000, and stalls the event loop (and the
        # replies in flight) for about 1 ms instead of 30-40.
        gc.freeze()
        profile_path = os.environ.get(PROFILE_ENV)
        if profile_path:
            _run_profiled(daemon, profile_path)
        else:
            trio.run(daemon.serve)
    finally:
        daemon.store.close()
        if lock is not None:
            lock.release()
    return 0


def _run_profiled(daemon: Daemon, path: str) -> None:
    """``SMSCD_PROFILE=FILE``: cProfile the event loop thread (worker threads are
    not profiled) and dump the stats to FILE on exit (``python -m pstats FILE``)."""
    import cProfile  # a development aid: imported only when asked for

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        trio.run(daemon.serve)
    finally:
        profiler.disable()
        profiler.dump_stats(path)
