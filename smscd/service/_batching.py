"""Batching helpers of the daemon's stages: the group commit (many tasks'
writes in one transaction) and a hand-off that never waits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import attrs
import structlog
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


log = structlog.get_logger("smscd")

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


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


def _offer(channel: trio.MemorySendChannel[T], item: T) -> bool:
    """Hand ``item`` on if a receiver is free now; False (never waiting) if not."""
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        return False
    return True
