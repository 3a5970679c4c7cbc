"""A minimal ESME made of ``smscd.smpp.Connection(Role.ESME)`` over trio TCP.

Just enough to drive the simulator from the ESME side in tests: requests wait for
their response by sequence number, inbound requests are recorded and answered
according to a few switches (answer deliver_sm with a given status, stay silent
to enquire_link or unbind), protocol errors are recorded rather than raised.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from smscd.smpp import (
    Bind,
    BindMode,
    Connection,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Event,
    FramingError,
    NeedData,
    PduRejected,
    Request,
    Response,
    Role,
    SubmitSm,
    Unbind,
    UnbindResp,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["DEFAULT_PASSWORD", "MiniEsme", "open_esme"]

#: The simulator's default bind password.
DEFAULT_PASSWORD = "secret"


@attrs.define
class _Slot:
    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None


class MiniEsme:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = Connection(Role.ESME)
        self._lock = trio.StrictFIFOLock()
        self._slots: dict[int, _Slot] = {}
        #: Every request the SMSC sent, in order.
        self.requests: list[Request] = []
        #: Every PduRejected the core raised (e.g. an unknown command id).
        self.rejected: list[PduRejected] = []
        #: The FramingError that ended the connection, if one did.
        self.framing_error: FramingError | None = None
        #: Set when the SMSC closed or reset the connection, or framing broke.
        self.closed = trio.Event()
        #: Status to answer deliver_sm with; None: do not answer.
        self.deliver_status: int | None = 0
        self.answer_enquire_link = True
        self.answer_unbind = True
        #: Called (awaited in the reader) with each deliver_sm after it was answered.
        self.on_deliver: Callable[[DeliverSm], Awaitable[None]] | None = None
        self._changed = trio.Event()

    # --- sending -------------------------------------------------------------

    async def send(self, event: Event) -> None:
        async with self._lock:
            data = self.conn.send(event, now=trio.current_time())
            try:
                await self.stream.send_all(data)
            except BaseException:
                self.conn.send_failed()
                raise

    async def request(self, event: Request) -> Response | None:
        """Send ``event`` and wait for its response (None if the connection closed)."""
        slot = _Slot()
        self._slots[event.sequence] = slot
        try:
            await self.send(event)
            await slot.done.wait()
        finally:
            self._slots.pop(event.sequence, None)
        return slot.response

    async def bind(
        self,
        mode: BindMode = BindMode.TRANSCEIVER,
        *,
        system_id: str = "smscd",
        password: str = DEFAULT_PASSWORD,
    ) -> Response | None:
        return await self.request(
            Bind(
                sequence=self.conn.next_sequence(),
                mode=mode,
                system_id=system_id,
                password=password,
            )
        )

    def submit_sm(
        self,
        text: str = "hello",
        *,
        destination_addr: str = "84327000686",
        registered_delivery: int = 0,
    ) -> SubmitSm:
        return SubmitSm(
            sequence=self.conn.next_sequence(),
            source_addr_ton=3,
            source_addr="8079",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=destination_addr,
            registered_delivery=registered_delivery,
            short_message=text.encode("ascii"),
        )

    async def submit(
        self,
        text: str = "hello",
        *,
        destination_addr: str = "84327000686",
        registered_delivery: int = 0,
    ) -> Response | None:
        return await self.request(
            self.submit_sm(
                text, destination_addr=destination_addr, registered_delivery=registered_delivery
            )
        )

    # --- receiving -----------------------------------------------------------

    async def wait_requests(self, kind: type[Request], n: int = 1) -> list[Request]:
        """Wait until ``n`` requests of type ``kind`` came from the SMSC."""
        while True:
            found = [r for r in self.requests if isinstance(r, kind)]
            if len(found) >= n:
                return found
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _on_request(self, event: Request) -> None:
        self.requests.append(event)
        self._notify()
        match event:
            case DeliverSm():
                if self.deliver_status is not None:
                    await self.send(
                        DeliverSmResp(sequence=event.sequence, command_status=self.deliver_status)
                    )
                if self.on_deliver is not None:
                    await self.on_deliver(event)
            case EnquireLink():
                if self.answer_enquire_link:
                    await self.send(EnquireLinkResp(sequence=event.sequence))
            case Unbind():
                if self.answer_unbind:
                    await self.send(UnbindResp(sequence=event.sequence))
            case _:
                pass

    async def _read(self) -> None:
        try:
            while True:
                data = await self.stream.receive_some(65536)
                self.conn.receive_data(data)
                while True:
                    try:
                        event = self.conn.next_event()
                    except PduRejected as exc:
                        self.rejected.append(exc)
                        self._notify()
                        if exc.reply is not None:
                            async with self._lock:
                                await self.stream.send_all(exc.reply)
                        continue
                    if isinstance(event, NeedData):
                        break
                    if isinstance(event, Bind | Unbind | EnquireLink | SubmitSm | DeliverSm):
                        await self._on_request(event)
                    else:
                        slot = self._slots.get(event.sequence)
                        if slot is not None:
                            slot.response = event
                            slot.done.set()
                if not data:
                    return
        except FramingError as exc:
            self.framing_error = exc
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.closed.set()
            for slot in self._slots.values():
                slot.done.set()
            self._notify()


@asynccontextmanager
async def open_esme(port: int) -> AsyncIterator[MiniEsme]:
    """Connect a MiniEsme to 127.0.0.1:``port``; its reader runs inside the block."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    esme = MiniEsme(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(esme._read)
        try:
            yield esme
        finally:
            # No unshielded await after cancel(): its Cancelled would replace (and so
            # hide) the exception the test body raised.
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await stream.aclose()
