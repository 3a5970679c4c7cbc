"""The state the daemon's stages share, its tuning constants, and the
senders held while a decision is in progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import structlog
import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from smscd import _metrics
    from smscd._hashing import HashProcesses
    from smscd._systemd import Notifier
    from smscd.config import Config
    from smscd.link import (
        Accepted,
        Link,
        LinkStatistics,
        Rejected,
        RetryLater,
    )
    from smscd.reset import (
        ChargingMode,
        Decision,
        Hasher,
        InboundMessage,
        Pipeline,
    )
    from smscd.service._batching import (
        _GroupCommit,
        _Linger,
    )
    from smscd.service._items import (
        ItemFailed,
        _Intake,
        _NeedsHash,
        _Pending,
        _PendingMo,
        _PendingReceipt,
        _Reset,
    )
    from smscd.service.api import FrontWatch
    from smscd.service.decide import _OwnerWaits
    from smscd.store import (
        EarlyReceipt,
        NewInbound,
        NewReceipt,
        OutboundMessage,
        QuarantinedItem,
        ReceiptMatch,
        StoreError,
    )
    from smscd.store.sql import (
        InboundCommit,
        SqlStore,
    )
    from smscd.web import (
        StatusBoard,
        StatusSnapshot,
    )


log = structlog.get_logger("smscd")

#: How long a claimed outbox row stays ours without a verdict (then another
#: claimer, or this one after a restart, may submit it again).
OUTBOX_LEASE_S = 60.0
#: Poll period of the outbox claimer. Fresh replies are handed to the submitters
#: directly; the claimer picks up retries as they come due, replies whose lease
#: ran out, and work queued by other daemons sharing a PostgreSQL store.
OUTBOX_POLL_S = 0.5
#: How long a claimer woken by rows no hand-off carries (``want_claim``)
#: waits for more before its claim.
CLAIM_LINGER_S = 0.01
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
#: How often SQLite's WAL is copied into the database in the background (if
#: anything was written since the last pass), and its size in pages of 4 KiB
#: past which it is restarted under the write lock (SQLite's own
#: auto-checkpoint is at 1,000).
WAL_CHECKPOINT_S = 0.1
WAL_CAP_PAGES = 1000
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


T = TypeVar("T")


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


class DaemonState:
    """The state every stage of one ``smscd run`` shares (the fields of
    ``smscd.daemon.Daemon``), and, for the type checker, the methods each
    stage offers the others."""

    config: Config
    store: SqlStore
    pipeline: Pipeline
    links: dict[str, Link]
    notifier: Notifier
    metrics: _metrics.Metrics
    db_limiter: trio.CapacityLimiter
    hashing: HashProcesses
    in_progress: set[int]
    claiming: trio.Lock
    recovery_wanted: trio.Event
    senders: _Senders
    handoff: dict[str, trio.MemorySendChannel[OutboundMessage]]
    claim_wanted: dict[str, trio.Event]
    stopping: bool
    intake_scope: trio.CancelScope
    metrics_port: int | None
    api_front: FrontWatch | None
    board: StatusBoard
    intake_channel: trio.MemoryReceiveChannel[_Pending] | None
    quick_decisions: _GroupCommit[InboundMessage, tuple[Decision, int | None] | _NeedsHash]
    reset_commits: _GroupCommit[Decision, int | None]
    submitting: int
    accepted: list[tuple[int, str, frozenset[str]]]
    accepted_waiting: trio.Event
    accepting: trio.Lock

    if TYPE_CHECKING:

        async def db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T: ...

        async def intake(self, name: str, send: trio.MemorySendChannel[_Pending]) -> None: ...

        async def committer(
            self,
            receive: trio.MemoryReceiveChannel[_Pending],
            send_decide: trio.MemorySendChannel[InboundMessage],
            send_reset: trio.MemorySendChannel[_Reset],
        ) -> None: ...

        async def commit_pending(
            self,
            mos: list[_PendingMo],
            receipts: list[_PendingReceipt],
            held: set[str],
        ) -> _Intake: ...

        async def refuse(self, intake: _Intake) -> None: ...

        def leave_for_recovery(self, mo: InboundMessage) -> None: ...

        def want_claim(self, carrier: str) -> None: ...

        async def gather_intake(
            self, receive: trio.MemoryReceiveChannel[_Pending], first: _Pending
        ) -> list[_Pending]: ...

        async def commit_intake(
            self,
            mos: Sequence[NewInbound],
            receipts: Sequence[NewReceipt],
            held: set[str],
            *,
            with_accepted: bool = True,
        ) -> tuple[InboundCommit, dict[int, _Reset]]: ...

        def intake_batch(
            self,
            mos: Sequence[NewInbound],
            receipts: Sequence[NewReceipt],
            held: set[str],
            accepted: Sequence[tuple[int, str, frozenset[str]]] = (),
        ) -> tuple[InboundCommit, dict[int, _Reset]]: ...

        def receipt_recorded(self, receipt: NewReceipt, match: ReceiptMatch | None) -> None: ...

        def receipts_matched(self, early: Iterable[EarlyReceipt]) -> None: ...

        def reset_linger(self) -> _Linger | None: ...

        def decide_at_once(
            self,
            batch: Sequence[InboundMessage],
            *,
            free_senders: set[str],
            resets: dict[int, _Reset],
        ) -> list[Decision | None]: ...

        def decide_each(
            self,
            batch: Sequence[InboundMessage],
            hasher: Hasher,
            *,
            free_senders: set[str] | None = None,
        ) -> Iterator[Decision | StoreError | _OwnerWaits | ItemFailed]: ...

        def charging(self, carrier: str) -> ChargingMode: ...

        async def worker(
            self, receive_decide: trio.MemoryReceiveChannel[InboundMessage]
        ) -> None: ...

        async def resetter(self, receive_reset: trio.MemoryReceiveChannel[_Reset]) -> None: ...

        async def decide(self, mo: InboundMessage) -> None: ...

        async def finish_reset(self, mo: InboundMessage, reset: _NeedsHash) -> None: ...

        async def committed(
            self, mo: InboundMessage, decision: Decision, outbound_id: int | None
        ) -> None: ...

        def decided(self, mo: InboundMessage, decision: Decision, outbound_id: int) -> None: ...

        def decide_quickly(
            self, batch: Sequence[InboundMessage]
        ) -> list[tuple[Decision, int | None] | _NeedsHash | Exception]: ...

        def commit_decisions(
            self, decisions: Sequence[Decision]
        ) -> list[int | Exception | None]: ...

        async def recovery(self, send_decide: trio.MemorySendChannel[InboundMessage]) -> None: ...

        async def quarantine_mo(self, mo: InboundMessage, stage: str, exc: Exception) -> None: ...

        def hand_off_now(
            self, mo: InboundMessage, decision: Decision, outbound_id: int
        ) -> bool: ...

        async def outbox(self, name: str) -> None: ...

        async def submitter(
            self, name: str, receive_row: trio.MemoryReceiveChannel[OutboundMessage]
        ) -> None: ...

        async def settle(
            self, name: str, row: OutboundMessage, result: Accepted | RetryLater | Rejected
        ) -> None: ...

        async def accept_recorder(self) -> None: ...

        async def write_accepted(self) -> None: ...

        async def accept_one_by_one(
            self, batch: Sequence[tuple[int, str, frozenset[str]]]
        ) -> None: ...

        def take_accepted(self) -> list[tuple[int, str, frozenset[str]]]: ...

        def mark_accepted(
            self, accepted: Sequence[tuple[int, str, frozenset[str]]]
        ) -> list[EarlyReceipt]: ...

        def abandoned(self, quarantined: Iterable[QuarantinedItem]) -> None: ...

        async def expirer(self) -> None: ...

        async def quarantine_reply(
            self, row: OutboundMessage, stage: str, exc: Exception
        ) -> None: ...

        async def watchdog(self) -> None: ...

        async def refresh_gauges(self) -> None: ...

        async def maintenance(self) -> None: ...

        async def health_problems(self) -> list[str]: ...

        def metrics_text(self) -> bytes: ...

        async def status(self) -> StatusSnapshot: ...

        def link_statistics(self) -> list[LinkStatistics]: ...

        def reload(self) -> None: ...

        async def signals(self, stop: trio.Event) -> None: ...

        async def shutdown(self) -> None: ...
