"""The inbound side of the simulated SMSC: MOs to the ESME, and what carriers do
with the ones it refuses.

``inject_mo`` sends one MO (or its parts, one after the other) within the
session's deliver window and waits for each answer, as a steady SMSC does.

``burst`` is an SMSC flushing its queue after an outage: N deliver_sm queued at
once and written in one flush, bypassing the deliver window, without waiting for
any answer. Each answer is recorded as it comes (``Pending.on_resolve``, no task
per MO) in the :class:`MoBurst` the call returns.

Redelivery (``redeliver_refused``), off by default: an MO deliver_sm the ESME
answers with a temporary error (``TEMPORARY_STATUSES``), or leaves unanswered
until its connection closes, is delivered again ``after_s`` seconds later, to a
bound receiver of the same system_id, within its deliver window, as a new PDU
with a new sequence number; up to ``max_attempts`` deliveries in all. Each
redelivery is a task of its own and is counted. A permanent error is final.

``send_raw`` writes hand-made bytes (the fuzzer's malformed PDUs) as they are and
waits for any response carrying the sequence number read from their header, seen
by the session's header tap whether or not the core can decode it. Fewer than 16
octets hold no sequence number: they are written and nothing is waited for.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import attrs
import trio

from smscd.simulator._errors import SimulatorError
from smscd.simulator._hub import TEMPORARY_STATUSES
from smscd.simulator._session import Pending, RawPending
from smscd.smpp import DeliverSm, LocalProtocolError, encode_gsm7

if TYPE_CHECKING:
    from smscd.link import Outgoing
    from smscd.simulator._hub import Hub
    from smscd.simulator._session import Session
    from smscd.smpp import Response

__all__ = ["MAX_BURST", "InboundSide", "MoBurst", "MoResponse"]

#: The most MOs one burst may carry.
MAX_BURST: Final = 100_000
_ESM_UDHI: Final = 0x40
_MAX_SHORT_MESSAGE: Final = 254

_Build = Callable[[int], DeliverSm]


@attrs.frozen(kw_only=True)
class MoResponse:
    """The ESME's answer to one MO of a burst."""

    #: Position of the MO in the burst (0 .. n-1).
    index: int
    #: command_status of the deliver_sm_resp (or generic_nack); None when the
    #: connection closed before any answer.
    status: int | None
    #: ``trio.current_time()`` when it came.
    at: float


@attrs.define(eq=False)
class MoBurst:
    """The N MOs one :meth:`Simulator.burst` sent, and the answers so far."""

    size: int
    #: ``trio.current_time()`` when the MOs were queued.
    sent_at: float
    #: When the write of all N ended (None if the connection failed first).
    written_at: float | None = None
    #: Answers in the order they came.
    responses: list[MoResponse] = attrs.Factory(list)
    _changed: trio.Event = attrs.Factory(trio.Event)

    def _record(self, response: MoResponse) -> None:
        self.responses.append(response)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_answered(self, n: int | None = None) -> list[MoResponse]:
        """Wait until ``n`` MOs (default: all) have an answer or were lost with
        the connection; the answers so far, in the order they came."""
        target = self.size if n is None else min(n, self.size)
        while len(self.responses) < target:
            await self._changed.wait()
        return list(self.responses)


def encode_text(text: str, data_coding: int) -> bytes:
    """``text`` as the short_message octets of ``data_coding``."""
    if data_coding == 0:
        try:
            return encode_gsm7(text)
        except LocalProtocolError as exc:
            raise ValueError(f"MO text with data_coding 0: {exc}") from exc
    if data_coding == 8:
        return text.encode("utf-16-be")
    if data_coding in (1, 3):
        return text.encode("latin-1")
    raise ValueError(f"cannot encode MO text with data_coding {data_coding:#04x}")


def _split(text: str, parts: int) -> list[str]:
    size = -(-len(text) // parts)
    return [text[i * size : (i + 1) * size] for i in range(parts)]


def _fill(pattern: str, index: int) -> str:
    """``pattern`` with ``{i}`` (``str.format`` syntax) replaced by ``index``."""
    try:
        return pattern.format(i=index)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{pattern!r}: only {{i}} may appear in braces ({exc})") from exc


def _with_sequence(template: DeliverSm, sequence: int) -> DeliverSm:
    return attrs.evolve(template, sequence=sequence)


class InboundSide:
    """MO delivery, bursts, redelivery and raw PDUs (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        #: (after_s, max_attempts) while redelivery is on.
        self.redeliver: tuple[float, int] | None = None
        #: MO deliver_sm sent again after a temporary error or a lost connection.
        self.redeliveries = 0

    def _template(
        self,
        *,
        source_addr: str,
        source_addr_ton: int,
        source_addr_npi: int,
        destination_addr: str | None,
        data_coding: int,
        payload: bytes,
        esm_class: int = 0,
    ) -> DeliverSm:
        if len(payload) > _MAX_SHORT_MESSAGE:
            raise ValueError(f"{len(payload)} octets do not fit one deliver_sm")
        return DeliverSm(
            sequence=1,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
            source_addr=source_addr,
            destination_addr=(
                self._hub.config.short_code if destination_addr is None else destination_addr
            ),
            esm_class=esm_class,
            data_coding=data_coding,
            short_message=payload,
        )

    # --- one MO ------------------------------------------------------------------

    async def inject_mo(
        self,
        source_addr: str,
        text: str,
        *,
        source_addr_ton: int,
        source_addr_npi: int,
        destination_addr: str | None,
        data_coding: int,
        parts: int,
        session: int | None,
    ) -> int:
        hub = self._hub
        target = hub.pick_receiver(session)
        if not 1 <= parts <= 255:
            raise ValueError("parts must be from 1 to 255")
        reference = random.randrange(256)
        for index, chunk in enumerate(_split(text, parts) if parts > 1 else [text], start=1):
            payload = encode_text(chunk, data_coding)
            if len(payload) > _MAX_SHORT_MESSAGE - (6 if parts > 1 else 0):
                raise ValueError(f"{len(payload)} octets do not fit one deliver_sm: use parts=")
            esm_class = 0
            if parts > 1:
                payload = bytes([5, 0, 3, reference, parts, index]) + payload
                esm_class = _ESM_UDHI
            template = self._template(
                source_addr=source_addr,
                source_addr_ton=source_addr_ton,
                source_addr_npi=source_addr_npi,
                destination_addr=destination_addr,
                data_coding=data_coding,
                payload=payload,
                esm_class=esm_class,
            )
            build = functools.partial(_with_sequence, template)
            status = await hub.deliver(target, build)
            self._after_attempt(target.system_id, build, status, attempt=1)
            if status is None:
                raise SimulatorError(f"session {target.id} closed before deliver_sm_resp")
            hub.emit(
                "mo_sent",
                session=target.id,
                source_addr=source_addr,
                destination_addr=template.destination_addr,
                text=chunk,
                part=index,
                parts=parts,
                status=status,
            )
            if status != 0:
                return status
        return 0

    # --- a burst -----------------------------------------------------------------

    async def burst(
        self,
        n: int,
        *,
        source: str,
        text: str,
        source_addr_ton: int,
        source_addr_npi: int,
        destination_addr: str | None,
        data_coding: int,
        session: int | None,
    ) -> MoBurst:
        hub = self._hub
        if not 1 <= n <= MAX_BURST:
            raise ValueError(f"a burst is 1 to {MAX_BURST} MOs")
        target = hub.pick_receiver(session)
        builds: list[_Build] = []
        for i in range(n):
            template = self._template(
                source_addr=_fill(source, i),
                source_addr_ton=source_addr_ton,
                source_addr_npi=source_addr_npi,
                destination_addr=destination_addr,
                data_coding=data_coding,
                payload=encode_text(_fill(text, i), data_coding),
            )
            builds.append(functools.partial(_with_sequence, template))
        record = MoBurst(size=n, sent_at=trio.current_time())
        queued: list[tuple[int, Outgoing]] = []
        for index, build in enumerate(builds):
            sequence = target.conn.next_sequence()
            target.pending[sequence] = Pending(
                on_resolve=functools.partial(
                    self._burst_answered, record, index, target, sequence, build
                )
            )
            queued.append((sequence, target.queue(build(sequence))))
        try:
            if await target.written(queued[-1][1]):
                record.written_at = trio.current_time()
        except BaseException:
            # Cancelled before the flush took them: take back what is still queued.
            target.unqueue(item for _sequence, item in queued)
            for sequence, item in queued:
                if not item.taken:
                    target.pending.pop(sequence, None)
            raise
        for sequence, item in queued:
            pending = target.pending.get(sequence)
            if not item.written and pending is not None:
                pending.resolve(None)  # refused by the core (the bind state moved on)
        hub.emit("burst_sent", session=target.id, n=n, written=record.written_at is not None)
        return record

    def _burst_answered(
        self,
        record: MoBurst,
        index: int,
        session: Session,
        sequence: int,
        build: _Build,
        response: Response | None,
    ) -> None:
        session.pending.pop(sequence, None)
        status = None if response is None else response.command_status
        record._record(MoResponse(index=index, status=status, at=trio.current_time()))
        if status is not None:
            self._hub.record_deliver_response(status)
        self._after_attempt(session.system_id, build, status, attempt=1)

    # --- redelivery --------------------------------------------------------------

    def _after_attempt(
        self, system_id: str, build: _Build, status: int | None, *, attempt: int
    ) -> None:
        """Schedule the next delivery of an MO whose ``attempt``-th one ended
        with ``status``, if redelivery is on and the status calls for it."""
        if self.redeliver is None or status == 0:
            return
        if status is not None and status not in TEMPORARY_STATUSES:
            return  # a permanent refusal is final
        after, max_attempts = self.redeliver
        if attempt >= max_attempts:
            self._hub.emit("mo_given_up", attempts=attempt, status=status)
            return
        self._hub.nursery.start_soon(self._redeliver, system_id, build, attempt + 1, after)

    async def _redeliver(self, system_id: str, build: _Build, attempt: int, after: float) -> None:
        hub = self._hub
        await trio.sleep(after)
        if self.redeliver is None:
            return  # switched off meanwhile
        session = await hub.wait_receiver(system_id)
        self.redeliveries += 1
        status = await hub.deliver(session, build)
        hub.emit("mo_redelivered", session=session.id, attempt=attempt, status=status)
        self._after_attempt(system_id, build, status, attempt=attempt)

    # --- raw PDUs ----------------------------------------------------------------

    async def send_raw(self, pdu: bytes, *, wait: float, session: int | None) -> int | None:
        target = self._hub.pick_receiver(session)
        if len(pdu) < 16:
            # No sequence number to answer: written as it is, nothing to wait for.
            await target.send(pdu)
            return None
        (sequence,) = struct.unpack_from(">I", pdu, 12)
        raw = RawPending()
        target.raw_pending[sequence] = raw
        try:
            if not await target.send(pdu):
                return None
            with trio.move_on_after(wait):
                await raw.done.wait()
        finally:
            if target.raw_pending.get(sequence) is raw:
                del target.raw_pending[sequence]
        return raw.status
