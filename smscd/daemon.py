"""The daemon: the one place that builds and wires the stages (L10).

``run`` configures logging, takes the SQLite lock, builds the store, the
pipeline and one link per carrier, and runs ``Daemon.serve``: one trio
nursery holding every task of the process. What each task does, and why the
stages are shaped as they are, is in ``smscd.service`` (its theory of
operation). ``SMSCD_PROFILE=FILE`` profiles the event loop (cProfile) into
FILE.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import attrs
import structlog
import trio

from smscd import _metrics
from smscd._hashing import HashProcesses
from smscd._lockfile import AlreadyRunning, DaemonLock
from smscd._runtime import settle_interpreter
from smscd._systemd import Notifier
from smscd.link import Link
from smscd.logging import configure_logging
from smscd.reset import Decision, InboundMessage, Pipeline
from smscd.service import DecideStage, IntakeStage, OperationsStage, OutboxStage
from smscd.service._batching import _GroupCommit
from smscd.service._items import _NeedsHash, _Pending, _Reset
from smscd.service._state import RESETTERS_PER_HASHER, WORKERS_PER_CORE, _Senders
from smscd.service.decide import _HashesElsewhere
from smscd.store import OutboundMessage, StoreError
from smscd.store.sql import SchemaNotCurrent, SqlStore, open_store, sqlite_path
from smscd.web import StatusBoard, create_app, run_sampler, serve_web

if TYPE_CHECKING:
    from collections.abc import Callable

    from smscd.config import ApiConfig, Config
    from smscd.service.api import FrontWatch

__all__ = ["Daemon", "run"]

log = structlog.get_logger("smscd")

T = TypeVar("T")

#: Environment variable naming a file: profile the event loop into it (development).
PROFILE_ENV = "SMSCD_PROFILE"


class ListenFailed(Exception):
    """The metrics or API listener could not listen where the config says."""


@attrs.define(eq=False)
class Daemon(IntakeStage, DecideStage, OutboxStage, OperationsStage):
    """All long-lived state of one ``smscd run``, and its stages' tasks."""

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
    #: Per carrier: set when rows were queued that no hand-off carries (an
    #: API client's MTs): its claimer runs at once instead of at its next poll.
    claim_wanted: dict[str, trio.Event] = attrs.field(factory=dict)
    stopping: bool = False
    intake_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    metrics_port: int | None = None
    #: The HTTP API's port once it listens (``[api]``).
    api_port: int | None = None
    #: The API's front process, when [api] is set (``/healthz``).
    api_front: FrontWatch | None = None
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

    # --- plumbing ------------------------------------------------------------------

    async def db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.db_limiter)

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
                try:
                    self.metrics_port = await root.start(serve_web, app, self.config.metrics_listen)
                except* OSError as group:
                    # A name that does not resolve, a port taken: the operator's
                    # to fix, in one line, not a traceback.
                    error = str(group.exceptions[0])
                    log.error(
                        "metrics_listen_failed", listen=self.config.metrics_listen, error=error
                    )
                    raise ListenFailed(error) from None
            if self.config.api is not None:
                await self._serve_api(root, self.config.api)
            await self.notifier.notify("READY=1", "STATUS=serving")
            log.info(
                "daemon_ready",
                carriers=list(self.links),
                metrics_port=self.metrics_port,
                **({"api_port": self.api_port} if self.api_port is not None else {}),
            )
            task_status.started()
            await stop.wait()
            await self.shutdown()
            root.cancel_scope.cancel()

    async def _serve_api(self, root: trio.Nursery, config: ApiConfig) -> None:
        """The HTTP API's listener, its front process and its callback sender
        (``smscd.service.api``)."""
        # Imported only when [api] is configured: the API's stack (httpx for
        # the callbacks) costs a daemon without it several MiB.
        from smscd.service.api import DaemonApi, FrontWatch, run_front

        api = DaemonApi(daemon=self, api=config)
        requests = self.metrics.api_requests

        def observe(route: str, status: int) -> None:
            requests.labels(route=route, status=str(status)).inc()

        self.api_front = FrontWatch()
        try:
            self.api_port = await root.start(
                partial(run_front, record=self.board.events.record, watch=self.api_front),
                api,
                config,
                self.config.log,
                observe,
            )
        except* OSError as group:
            error = str(group.exceptions[0])
            log.error("api_listen_failed", listen=config.listen, error=error)
            raise ListenFailed(error) from None
        root.start_soon(api.send_callbacks)

    async def _run_intake(self, send: trio.MemorySendChannel[_Pending]) -> None:
        with self.intake_scope:
            async with send, trio.open_nursery() as nursery:
                for name in self.links:
                    nursery.start_soon(self.intake, name, send.clone())


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def build(config: Config, *, board: StatusBoard | None = None) -> Daemon:
    store = open_store(config.database_url, background_checkpoints=True)
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
        settle_interpreter()
        exit_code = 0
        profile_path = os.environ.get(PROFILE_ENV)
        if profile_path:
            _run_profiled(daemon, profile_path)
        else:
            trio.run(daemon.serve)
    except* ListenFailed:
        exit_code = 2
    finally:
        daemon.store.close()
        if lock is not None:
            lock.release()
    return exit_code


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
