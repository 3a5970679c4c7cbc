"""The group-flush writer of one SMPP connection (the link's and the simulator's).

Theory of operation
-------------------
Everything written on a connection goes through its :class:`FlushWriter`: an
event, encoded by the sans-I/O ``Connection.send`` when its turn comes, or raw
bytes, written as they are. A writer queues its item (:meth:`~FlushWriter.enqueue`)
and waits for it (:meth:`~FlushWriter.written`):

* if no flush is running, it runs one itself: after one pass of the scheduler
  (so that the others writing in that pass join in), the flush takes the whole
  queue, encodes its events in queue order with ``conn.send`` and writes every
  byte with one ``send_all``. Under load that is one syscall for many PDUs;
* if a flush is running, it waits for that flush to end. The end of a flush
  wakes all its waiters at once; the first whose item is still queued runs the
  next flush.

One flush runs at a time, so the core's state changes in wire order. The
``flushing`` flag is the writer's lock (STYLE D1 names a ``StrictFIFOLock``):
the queue, not the order in which waiters wake, fixes the order on the wire,
and a lock would hand the turn to one waiter per scheduler pass where the flag
releases every waiter whose item the flush wrote in one.

An event the core refuses (``SmppError``: not legal in the bind state) is not
written; its item carries the error and the rest of the batch goes out. A
writer cancelled before a flush took its item takes it back out of the queue,
so nothing half-committed is left behind. If ``send_all`` raises -- Cancelled
included -- the core is told (``conn.send_failed()``: the connection is dead),
``on_failure`` is called, every item of the batch fails (``BrokenResourceError``
unless the core refused it already) and the exception propagates to the
flusher.

``write_timeout`` chooses who may interrupt a write. None: the write runs in
the flusher's own cancel scope, so a flusher cancelled mid-write fails the
connection as above (the simulator: a slow reader may take any time to read a
burst). A number: the write is shielded from the flusher's cancellation, since
the batch belongs to every writer in it, and bounded by that many seconds; a
write that takes longer means a dead peer and fails with
``BrokenResourceError("write timed out")`` (the link).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import attrs
import trio

from smscd.smpp import SmppError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from smscd.smpp import Connection, Event

__all__ = ["FlushWriter", "Outgoing"]


@attrs.define(eq=False)
class Outgoing:
    """One event (or raw bytes) in a writer's queue."""

    payload: Event | bytes
    #: Called when a flush takes the item, before it is encoded.
    on_taken: Callable[[], None] | None = None
    #: Taken by a flush: encoded (or refused) and handed to send_all.
    taken: bool = False
    #: The flush that took it is over (written, refused or failed: see ``error``).
    done: bool = False
    #: Why it did not reach the wire: the core's SmppError, or the write's error.
    error: BaseException | None = None

    @property
    def written(self) -> bool:
        """Whether its flush is over and wrote it."""
        return self.done and self.error is None


class FlushWriter:
    """Group-commit writes of one connection (see the module docstring)."""

    def __init__(
        self,
        stream: trio.abc.SendStream,
        conn: Connection,
        *,
        write_timeout: float | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.write_timeout = write_timeout
        self._on_failure = on_failure
        #: Items queued and not yet taken by a flush, in wire order.
        self.queued: list[Outgoing] = []
        #: A flush is writing (one at a time); its end sets ``_flushed``.
        self.flushing = False
        self._flushed = trio.Event()

    def enqueue(
        self, payload: Event | bytes, *, on_taken: Callable[[], None] | None = None
    ) -> Outgoing:
        """Queue ``payload``: its place on the wire is fixed from now on."""
        item = Outgoing(payload=payload, on_taken=on_taken)
        self.queued.append(item)
        return item

    def discard(self, item: Outgoing) -> None:
        """Take back ``item`` if it is still queued (no flush has taken it)."""
        if not item.taken:
            with contextlib.suppress(ValueError):
                self.queued.remove(item)

    def discard_all(self, items: Iterable[Outgoing]) -> None:
        """Take back every item of ``items`` that is still queued."""
        dropped = {id(item) for item in items if not item.taken}
        if dropped:
            self.queued = [item for item in self.queued if id(item) not in dropped]

    async def send(self, payload: Event | bytes) -> None:
        """Queue ``payload`` and wait until it is written; see :meth:`written`."""
        await self.written(self.enqueue(payload))

    async def written(self, item: Outgoing) -> None:
        """Wait until the flush that takes ``item`` is over, running it if no
        flush is. Raises the core's SmppError (nothing written) or the write's
        error (the connection failed); a cancelled writer whose item was not
        taken yet takes it back."""
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            while not item.done:
                if self.flushing:
                    await self._flushed.wait()
                    continue
                self.flushing = True
                try:
                    # One pass of the scheduler first: the others writing in
                    # this pass join in.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    await self._flush()
                finally:
                    self.flushing = False
                    self._flushed.set()
                    self._flushed = trio.Event()
        except BaseException:
            self.discard(item)
            raise
        if item.error is not None:
            raise item.error

    async def _flush(self) -> None:
        batch, self.queued = self.queued, []
        now = trio.current_time()
        chunks: list[bytes] = []
        for item in batch:
            item.taken = True
            if item.on_taken is not None:
                item.on_taken()
            if isinstance(item.payload, bytes):
                chunks.append(item.payload)
                continue
            try:
                chunks.append(self.conn.send(item.payload, now=now))
            except SmppError as exc:
                item.error = exc
        try:
            if not chunks:
                return
            if self.write_timeout is None:
                await self.stream.send_all(b"".join(chunks))
            else:
                with trio.move_on_after(self.write_timeout, shield=True) as scope:
                    await self.stream.send_all(b"".join(chunks))
                if scope.cancelled_caught:
                    raise trio.BrokenResourceError("write timed out")
        except BaseException:
            self.conn.send_failed()
            if self._on_failure is not None:
                self._on_failure()
            for item in batch:
                if item.error is None:
                    item.error = trio.BrokenResourceError("the write failed")
            raise
        finally:
            for item in batch:
                item.done = True
