"""smscd.link: the trio driver of one SMSC bind.

link = Link(LinkConfig(name="viettel", host=..., port=..., system_id=..., password=...))
async with trio.open_nursery() as nursery:
    await nursery.start(link.run)           # returns at once; binds in the background
    result = await link.submit(OutboundSm(source_addr="8079", destination_addr=..., text=...))
    async for item in link.inbound():       # InboundMo | InboundReceipt
        ...                                 # make it durable, then
        await item.ack()                    # the deliver_sm_resp goes out now
    await ack_all(items, status)            # many at once: one write per connection
    await link.stop()

FlushWriter is the group-commit writer of one SMPP connection; the simulator
writes through it too.
"""

from __future__ import annotations

from smscd.link._config import BindKind, LinkConfig
from smscd.link._flush import FlushWriter, Outgoing
from smscd.link._link import Link, ack_all
from smscd.link._types import (
    Accepted,
    AckHandle,
    InboundItem,
    InboundMo,
    InboundReceipt,
    LinkStatistics,
    OutboundSm,
    Rejected,
    RetryLater,
    SubmitResult,
)

__all__ = [
    "Accepted",
    "AckHandle",
    "BindKind",
    "FlushWriter",
    "InboundItem",
    "InboundMo",
    "InboundReceipt",
    "Link",
    "LinkConfig",
    "LinkStatistics",
    "OutboundSm",
    "Outgoing",
    "Rejected",
    "RetryLater",
    "SubmitResult",
    "ack_all",
]
