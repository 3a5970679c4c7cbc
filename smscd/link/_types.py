"""Values that cross the link's public API: outbound messages, submit results,
inbound items and statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

if TYPE_CHECKING:
    from smscd.smpp import Receipt

__all__ = [
    "Accepted",
    "AckHandle",
    "InboundItem",
    "InboundMo",
    "InboundReceipt",
    "LinkStatistics",
    "OutboundSm",
    "Rejected",
    "RetryLater",
    "SubmitResult",
]


@attrs.frozen(kw_only=True)
class OutboundSm:
    """One MT to submit: GSM-7 text sent with data_coding 0 (the replies of
    8079 are GSM-7 safe ASCII), or UCS-2 (UTF-16BE) with data_coding 8."""

    source_addr: str
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    destination_addr: str
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    text: str = attrs.field(repr=False)  # may hold a new password: never in a repr
    registered_delivery: int = 1
    #: 0: GSM 03.38 (unpacked); 8: UCS-2.
    data_coding: int = attrs.field(default=0, validator=attrs.validators.in_((0, 8)))


# --- submit results (a closed union) ---------------------------------------------


@attrs.frozen(kw_only=True)
class Accepted:
    """The SMSC accepted the submit_sm and gave it ``message_id``."""

    message_id: str
    #: Canonical forms of ``message_id`` to match receipts against.
    id_keys: frozenset[str]


@attrs.frozen(kw_only=True)
class RetryLater:
    """Not accepted this time; submitting again later is expected to work.

    ``reason`` is one of ``"throttled"``, ``"temporary_status"``,
    ``"connection_lost"`` and ``"timeout"`` (the SMSC may have accepted it: counted
    in ``lost_in_flight``), ``"not_bound"``, ``"stopping"``.
    """

    status: int | None
    reason: str


@attrs.frozen(kw_only=True)
class Rejected:
    """The SMSC refused the message with a permanent ``status``."""

    status: int


SubmitResult: TypeAlias = Accepted | RetryLater | Rejected


# --- inbound items (a closed union) ----------------------------------------------


class AckHandle(Protocol):
    """What an inbound item calls to answer its deliver_sm(s)."""

    async def ack(self, status: int) -> None: ...


@attrs.frozen(kw_only=True)
class InboundMo:
    """A complete (reassembled if multi-part) mobile-originated message.

    The SMSC gets its ``deliver_sm_resp`` only when :meth:`ack` is called (or
    ``ESME_RX_T_APPN`` once the link's ``ack_timeout`` has passed).
    """

    carrier: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    text: str
    data_coding: int
    #: How many deliver_sm PDUs carried it.
    parts: int
    _ack_handle: AckHandle = attrs.field(repr=False, eq=False, alias="ack_handle")

    async def ack(self, status: int = 0) -> None:
        """Answer every part with ``status`` (0 once the MO is durable). Idempotent."""
        await self._ack_handle.ack(status)


@attrs.frozen(kw_only=True)
class InboundReceipt:
    """A delivery receipt, with the canonical keys of the message id it reports."""

    carrier: str
    receipt: Receipt
    id_keys: frozenset[str]
    source_addr: str
    destination_addr: str
    _ack_handle: AckHandle = attrs.field(repr=False, eq=False, alias="ack_handle")

    async def ack(self, status: int = 0) -> None:
        """Answer the deliver_sm with ``status``. Idempotent."""
        await self._ack_handle.ack(status)


InboundItem: TypeAlias = InboundMo | InboundReceipt


@attrs.frozen(kw_only=True)
class LinkStatistics:
    """A snapshot of one link (``Link.statistics()``)."""

    name: str
    #: ``idle``, ``connecting``, ``binding``, ``bound``, ``backing_off``,
    #: ``stopping`` or ``stopped`` (the least advanced of a TX+RX pair).
    state: str
    bound: bool
    #: Seconds since ``bound`` last changed (or since ``run()`` started).
    state_age: float = 0.0
    in_flight: int
    window: int
    #: The submit cap, submit_sm per second (0: none).
    throughput: float = 0.0
    submitted: int
    accepted: int
    retry_later: int
    rejected: int
    #: submit_sm in flight when the connection dropped or timed out: the SMSC may
    #: have accepted them, so a resubmit may duplicate.
    lost_in_flight: int
    reconnects: int
    #: Binds lost other than by ``stop()``.
    disconnects: int = 0
    throttled: int
    #: Seconds since the last throttle pause began (None: never throttled).
    throttled_ago: float | None = None
    mo_received: int
    receipts_received: int
    #: deliver_sm read and not yet answered (at most ``max_unacked``).
    inbound_held: int
    #: Times the reader stopped reading because ``max_unacked`` were held (or the
    #: inbound channel was full).
    inbound_paused: int
