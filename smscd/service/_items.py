"""What passes between the daemon's stages: pending inbound items, resets
decided at intake, the reply row of a decision, and how one item's failure
is described."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeAlias

import attrs
import structlog

from smscd.reset import (
    Decision,
    InboundMessage,
    mask_msisdn,
)
from smscd.store import (
    NewInbound,
    NewReceipt,
    OutboundMessage,
    OutboundState,
)

if TYPE_CHECKING:
    from smscd.link import (
        InboundMo,
        InboundReceipt,
    )
    from smscd.store.sql import (
        InboundCommit,
    )

log = structlog.get_logger("smscd")

_LONG_NUMBER = re.compile(r"\d{7,}")
_DESCRIBE_LIMIT = 200


@attrs.define
class _PendingMo:
    item: InboundMo
    new: NewInbound


@attrs.define
class _PendingReceipt:
    item: InboundReceipt
    new: NewReceipt


_Pending: TypeAlias = _PendingMo | _PendingReceipt


@attrs.define(kw_only=True)
class _Intake:
    """What ``Daemon.commit_pending`` made of a batch: the MOs and receipts it
    committed (with ``committed`` and ``resets`` as ``commit_intake`` gives
    them), those the store refused, and those left when it went down."""

    mos: list[_PendingMo]
    receipts: list[_PendingReceipt]
    committed: InboundCommit
    resets: dict[int, _Reset] = attrs.field(factory=dict)
    refused: list[tuple[_Pending, Exception]] = attrs.field(factory=list)
    tempfail: list[_Pending] = attrs.field(factory=list)


class ItemFailed(Exception):
    """Deciding one MO failed on something else than the store: carries the
    exception, for the worker to quarantine that MO alone."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(_describe(cause))
        self.cause = cause


def _describe(exc: BaseException) -> str:
    """An exception as a log line or a quarantine reason may show it: its type
    and message, numbers that could be phones masked, at most 200 characters."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = _LONG_NUMBER.sub(lambda m: mask_msisdn(m.group()), text)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= _DESCRIBE_LIMIT else text[: _DESCRIBE_LIMIT - 3] + "..."


@attrs.frozen(kw_only=True)
class _NeedsHash:
    """A RESET_OK decision still to be completed with the hash of ``password``."""

    decision: Decision
    password: str = attrs.field(repr=False)


@attrs.frozen
class _Reset:
    """A reset decided at intake, its sender held: to be hashed and committed."""

    mo: InboundMessage
    reset: _NeedsHash


def _reply_row(mo: InboundMessage, decision: Decision, outbound_id: int) -> OutboundMessage:
    return OutboundMessage(
        id=outbound_id,
        inbound_id=mo.id,
        carrier=mo.carrier,
        destination_addr=mo.source_addr,
        dest_addr_ton=mo.source_addr_ton,
        dest_addr_npi=mo.source_addr_npi,
        body=decision.reply_text,
        state=OutboundState.QUEUED,
        attempts=0,
        next_attempt_at=decision.decided_at,
    )
