"""The intake stage: link -> committed rows -> acks.

See ``smscd.daemon`` for the theory of operation."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from smscd.link import (
    InboundMo,
    InboundReceipt,
    ack_all,
)
from smscd.reset import (
    InboundMessage,
    InboundState,
    mask_msisdn,
    sender_key,
)
from smscd.smpp import CommandStatus
from smscd.store import (
    EarlyReceipt,
    NewInbound,
    NewReceipt,
    ReceiptMatch,
    StoreError,
    StoreUnavailable,
)
from smscd.store.sql import (
    InboundCommit,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


from smscd.service._batching import (
    _offer,
)
from smscd.service._items import (
    _describe,
    _Intake,
    _NeedsHash,
    _Pending,
    _PendingMo,
    _PendingReceipt,
    _Reset,
)
from smscd.service._state import (
    LINGER_BELOW,
    OUTBOX_LEASE_S,
    RECEIPT_LINGER_S,
    DaemonState,
)

log = structlog.get_logger("smscd")


class IntakeStage(DaemonState):
    """The intake stage: link -> committed rows -> acks."""

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
        """Blocking: read, decide, then write. The batch's MOs are decided
        first (``decide_at_once``: reads only, with the senders in ``held``
        held, so the counts they were checked against cannot change before the
        commit), then committed with those decisions, its receipts and the
        SMSC's acceptances waiting, in one transaction that calls nothing
        back. Returns the commit and the resets decided, by MO id, which stay
        RECEIVED until their hash is committed."""
        # Not stored yet: each MO stands in with a negative id until it has one.
        standing = [
            InboundMessage(
                id=-(index + 1),
                carrier=mo.carrier,
                source_addr=mo.source_addr,
                source_addr_ton=mo.source_addr_ton,
                source_addr_npi=mo.source_addr_npi,
                msisdn=mo.msisdn,
                destination_addr=mo.destination_addr,
                text=mo.text,
                received_at=mo.received_at,
                state=InboundState.RECEIVED,
            )
            for index, mo in enumerate(mos)
        ]
        decided_resets: dict[int, _Reset] = {}
        decisions = (
            self.decide_at_once(standing, free_senders=set(held), resets=decided_resets)
            if standing
            else []
        )
        committed = self.store.commit_inbound(
            mos,
            receipts,
            duplicate_window_s=self.config.reset.duplicate_window,
            decisions=decisions,
            lease_s=OUTBOX_LEASE_S,
            accepted=accepted,
            now=datetime.now(UTC),
        )
        resets: dict[int, _Reset] = {}
        for index, (row, _decision, _outbound_id) in enumerate(committed.messages):
            reset = decided_resets.get(-(index + 1))
            if reset is not None and row.state is InboundState.RECEIVED:
                needs = reset.reset
                resets[row.id] = _Reset(
                    row,
                    _NeedsHash(
                        decision=attrs.evolve(needs.decision, inbound_id=row.id),
                        password=needs.password,
                    ),
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
