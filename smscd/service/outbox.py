"""The outbox stage: hand-off, claim, submit, accept, retry and expiry, per carrier.

See ``smscd.daemon`` for the theory of operation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
import trio

from smscd.gsm7 import is_gsm7
from smscd.link import (
    Accepted,
    OutboundSm,
    Rejected,
    RetryLater,
)
from smscd.reset import (
    Decision,
    InboundMessage,
    mask_msisdn,
)
from smscd.store import (
    EarlyReceipt,
    OutboundMessage,
    QuarantinedItem,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


from smscd.service._items import (
    _describe,
    _reply_row,
)
from smscd.service._state import (
    CLAIM_LINGER_S,
    EXPIRY_BATCH,
    EXPIRY_PERIOD_S,
    LINGER_BELOW,
    OUTBOX_LEASE_S,
    OUTBOX_POLL_S,
    RETRY_BASE_S,
    RETRY_MAX_S,
    SETTLE_LINGER_S,
    DaemonState,
)

log = structlog.get_logger("smscd")

#: data_coding of a text that is not GSM-7 (an API client's, in Vietnamese).
UCS2 = 8


class OutboxStage(DaemonState):
    """The outbox stage: hand-off, claim, submit, accept, retry and expiry, per carrier."""

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
                    # Made before the claim: a row queued during the claim's
                    # transaction sets it, and the claimer does not sleep.
                    wanted = self.claim_wanted[name] = trio.Event()
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
                        with trio.move_on_after(OUTBOX_POLL_S):
                            await wanted.wait()
                            # Woken: a burst of MTs shares one claim.
                            await trio.sleep(CLAIM_LINGER_S)

    def want_claim(self, carrier: str) -> None:
        """Rows of ``carrier`` were queued that no hand-off carries (an API
        client's MTs): its claimer takes them now, not at its next poll."""
        wanted = self.claim_wanted.get(carrier)
        if wanted is not None:
            wanted.set()

    async def submitter(
        self, name: str, receive_row: trio.MemoryReceiveChannel[OutboundMessage]
    ) -> None:
        smsc = self.config.smsc(name)
        link = self.links[name]
        async with receive_row:
            async for row in receive_row:
                self.submitting += 1
                try:
                    # An API client's MT carries its own sender id; a reply
                    # to an MO comes from the short code.
                    own_sender = row.source_addr is not None
                    message = OutboundSm(
                        source_addr=row.source_addr or self.config.short_code,
                        source_addr_ton=(
                            row.source_addr_ton or 0 if own_sender else smsc.source_ton
                        ),
                        source_addr_npi=(
                            row.source_addr_npi or 0 if own_sender else smsc.source_npi
                        ),
                        destination_addr=row.destination_addr,
                        dest_addr_ton=row.dest_addr_ton,
                        dest_addr_npi=row.dest_addr_npi,
                        text=row.body,
                        data_coding=0 if is_gsm7(row.body) else UCS2,
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
        on these), unless the committer's transactions take them first. A
        crash before it is written means that reply is sent again after its
        lease, as for a crash between the submit and its response."""
        while True:
            await self.accepted_waiting.wait()
            self.accepted_waiting = trio.Event()
            # Only an acceptance that waited a whole linger is written here:
            # while MOs or receipts come, the committer takes each within a
            # few milliseconds, and a transaction of its own would only hold
            # up the committer's next one.
            while 0 < len(self.accepted) < LINGER_BELOW:
                oldest = self.accepted[0]
                await trio.sleep(SETTLE_LINGER_S)
                if self.accepted and self.accepted[0] is oldest:
                    break
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
