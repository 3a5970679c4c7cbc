"""What the daemon does besides the stream: health, status, gauges,
maintenance, signals, reload and the graceful stop."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from smscd._systemd import watchdog_interval
from smscd.config import ConfigError, load_config
from smscd.store import (
    StoreError,
)
from smscd.web import (
    DayActivity,
    QueueStatus,
    StatusSnapshot,
    StoreStatus,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from smscd.link import LinkStatistics

from smscd.service._state import (
    CHECKPOINT_PERIOD_S,
    DAILY_QUERY_S,
    STOP_DRAIN_S,
    STORE_CHECK_S,
    WAL_CAP_PAGES,
    WAL_CHECKPOINT_S,
    DaemonState,
    T,
)

log = structlog.get_logger("smscd")


class OperationsStage(DaemonState):
    """What the daemon does besides the stream: health, status, gauges,"""

    async def watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            await self.notifier.notify("WATCHDOG=1")
            await trio.sleep(interval)

    async def refresh_gauges(self) -> None:
        """Every second: the outbox depth per carrier (one index search each:
        its cost follows the queue, not the history) and the links' gauges."""
        while True:
            try:
                depth, _oldest = await self.db(self.store.outbox_summary, list(self.links))
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
        """SQLite's WAL: copied into the database in the background
        (``copy_wal``), and truncated every CHECKPOINT_PERIOD_S (see
        SqlStore.checkpoint)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.copy_wal)
            while True:
                await trio.sleep(CHECKPOINT_PERIOD_S)
                try:
                    await self.db(self.store.checkpoint)
                except StoreError as exc:
                    log.warning("checkpoint_failed", error=str(exc))

    async def copy_wal(self) -> None:
        """Every WAL_CHECKPOINT_S, if anything was written since the last
        pass, a passive checkpoint in a thread of its own
        (``SqlStore.checkpoint_wal``): the daemon's commits never checkpoint
        (``open_store(..., background_checkpoints=True)``), so no MO waits for
        one. Returns at once on PostgreSQL."""
        limiter = trio.CapacityLimiter(1)
        failing = False
        done_writes = self.store.write_count
        while True:
            await trio.sleep(WAL_CHECKPOINT_S)
            if self.store.write_count == done_writes:
                continue
            done_writes = self.store.write_count
            try:
                done = await trio.to_thread.run_sync(
                    partial(self.store.checkpoint_wal, cap_pages=WAL_CAP_PAGES), limiter=limiter
                )
            except StoreError as exc:
                if not failing:
                    log.warning("wal_checkpoint_failed", error=str(exc))
                failing = True
                continue
            if done is None:
                return
            if failing:
                log.info("wal_checkpoint_recovered")
            failing = False
            self.metrics.wal_pages.set(done.pages)
            if done.restarted:
                self.metrics.wal_restarts.inc()

    async def health_problems(self) -> list[str]:
        """``/healthz``: why the daemon is not healthy (every link bound, the
        store answering, the API's front process running when [api] is set),
        one line each; empty when it is."""
        problems = [
            f"link {n} not bound" for n, link in self.links.items() if not link.statistics().bound
        ]
        if self.api_front is not None and self.api_front.pid is None:
            problems.append("api front process not running")
        try:
            with trio.fail_after(STORE_CHECK_S):
                await self.db(self.store.outbox_summary, list(self.links))
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
