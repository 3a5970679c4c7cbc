"""The daemon's stages: each a module with one job, joined by the store.

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
use ``GroupCommit``, where the first waiter writes for everyone). The intake
reads, decides, then writes: a batch's MOs are decided just before their
transaction (``decide_at_once``: reads only, read for read as a worker would),
and help, invalid code, mismatch and RATE_LIMITED are committed with them; the
store applies the decisions it is given and calls nothing back. A
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
Modules
-------
``intake``      link -> committed rows -> acks (``committer``); what it cannot
                hand on without waiting stays RECEIVED for recovery.
``decide``      RECEIVED rows -> decisions: workers, resetters, recovery, the
                decisions made at intake, hashing off the event loop.
``outbox``      hand-off, claim, submit, accept, retry and expiry, per carrier.
``operations``  health, status, gauges, maintenance, signals, reload, the stop.
``api_resets``  ``POST /v1/resets``: a call decided like an MO by the decide
                stage's machinery, answered instead of replied to by SMS.
``_batching``   the group commit and the hand-off that never waits.
``_items``      what passes between stages; ``_state`` what they share.

The stages are mixins of one ``smscd.daemon.Daemon``: they share the state
that keeps them consistent (the senders held, the MOs in progress, the claim
lock, the acceptances waiting), which ``_state.DaemonState`` declares.
"""

from __future__ import annotations

from smscd.service._items import ItemFailed
from smscd.service._state import (
    OUTBOX_LEASE_S,
    RECEIPT_LINGER_S,
    RESET_BATCH_PER_HASHER,
    RESET_LINGER_S,
    RETRY_BASE_S,
    DaemonState,
)
from smscd.service.decide import DecideStage
from smscd.service.intake import IntakeStage
from smscd.service.operations import OperationsStage
from smscd.service.outbox import OutboxStage

__all__ = [
    "OUTBOX_LEASE_S",
    "RECEIPT_LINGER_S",
    "RESET_BATCH_PER_HASHER",
    "RESET_LINGER_S",
    "RETRY_BASE_S",
    "DaemonState",
    "DecideStage",
    "IntakeStage",
    "ItemFailed",
    "OperationsStage",
    "OutboxStage",
]
