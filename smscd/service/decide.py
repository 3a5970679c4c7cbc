"""The decide stage: RECEIVED rows -> decisions, hashing off the event loop.

See ``smscd.daemon`` for the theory of operation."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from smscd._hashing import HashFailed
from smscd.reset import (
    Account,
    ChargingMode,
    Decision,
    InboundMessage,
    ResetCounts,
    ResetRequest,
    mask_msisdn,
    parse_message,
)
from smscd.store import (
    StoreError,
    StoreRejected,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from smscd.reset import Hasher
    from smscd.store.sql import (
        SqlStore,
    )

from smscd.service._batching import (
    _Linger,
)
from smscd.service._items import (
    ItemFailed,
    _describe,
    _NeedsHash,
    _Reset,
)
from smscd.service._state import (
    CLAIM_STALE_S,
    OUTBOX_LEASE_S,
    RECOVERY_BATCH,
    RECOVERY_PERIOD_S,
    RESET_BATCH_PER_HASHER,
    RESET_LINGER_S,
    DaemonState,
)

log = structlog.get_logger("smscd")

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


class DecideStage(DaemonState):
    """The decide stage: RECEIVED rows -> decisions, hashing off the event loop."""

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

    def decide_at_once(
        self,
        batch: Sequence[InboundMessage],
        *,
        free_senders: set[str],
        resets: dict[int, _Reset],
    ) -> list[Decision | None]:
        """Blocking, reads only, just before the intake transaction: the
        decisions of ``batch`` to commit with it; None for the MOs to leave
        RECEIVED. A reset (the registered phone, within its limits: only for a
        sender in ``free_senders``, which the committer holds) is left
        RECEIVED too and put in ``resets``: its password is hashed and
        committed after that transaction, and the counts it was checked
        against cannot change meanwhile, as its sender stays held. An MO of a
        sender with another decision in progress is left to a worker."""
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
        deciding, a burst the committer could not hand on) back to the
        workers; at start, then every few seconds or when woken. A pass reads
        the RECEIVED rows a batch at a time, each batch after the last one's
        highest id, to the end: the rows already in progress (being hashed)
        are skipped, and never stop it short of the rows behind them."""
        after_id = 0
        async with send_decide:
            while True:
                async with self.claiming:
                    try:
                        rows, quarantined = await self.db(
                            self.store.recover_inbound,
                            limit=RECOVERY_BATCH,
                            now=datetime.now(UTC),
                            stale_s=CLAIM_STALE_S,
                            after_id=after_id,
                        )
                    except StoreError as exc:
                        log.warning("recovery_failed", error=str(exc))
                        rows, quarantined = [], []
                    self.abandoned(quarantined)
                    seen = [row.id for row in rows] + [item.id for item in quarantined]
                    more = len(seen) >= RECOVERY_BATCH
                    after_id = max(seen) if more else 0
                    rows = [
                        row
                        for row in rows
                        if row.id not in self.in_progress and row.carrier in self.links
                    ]
                    self.in_progress.update(row.id for row in rows)
                for row in rows:
                    log.info("mo_recovered", mo_id=row.id, carrier=row.carrier)
                    await send_decide.send(row)
                if not more:
                    with trio.move_on_after(RECOVERY_PERIOD_S):
                        await self.recovery_wanted.wait()
                    self.recovery_wanted = trio.Event()

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
