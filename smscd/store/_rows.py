"""Rows of the message tables as the store's attrs values (``from_row``), and
what the statements built from them share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import aliased

from smscd.reset import InboundMessage, InboundState, Outcome
from smscd.store.models import InboundRow, OutboundRow, UtcDateTime
from smscd.store.types import OutboundMessage, OutboundState

__all__ = [
    "AT",
    "INBOUND_COLUMNS",
    "OUTBOUND_COLUMNS",
    "inbound_from_row",
    "of_any_carrier",
    "outbound_from_row",
]

#: The type of a statement's datetime parameter (``bindparam("p_at", type_=AT)``):
#: stored as the column stores it.
AT = UtcDateTime()


def of_any_carrier() -> ColumnElement[bool]:
    """``outbound_messages.carrier IN (every carrier that has a reply)``: the
    condition that lets a statement picking replies by state alone (expiry,
    releases, counts) search the (carrier, state, next_attempt_at) index,
    carrier by carrier, instead of reading the whole table, whose history
    grows by one row per MO. The carriers are read from that index one at a
    time (a loose index scan: each the least one above the one before), so
    they cost a few index searches however many replies there are."""
    later = aliased(OutboundRow)
    # Nested in the IN (...): a statement that begins with WITH, not UPDATE,
    # gets no rowcount from pysqlite.
    carriers = select(func.min(OutboundRow.carrier).label("carrier")).cte(
        "carriers", recursive=True, nesting=True
    )
    carriers = carriers.union_all(
        select(
            select(func.min(later.carrier))
            .where(later.carrier > carriers.c.carrier)
            .scalar_subquery()
        ).where(carriers.c.carrier.is_not(None))
    )
    return OutboundRow.carrier.in_(
        select(carriers.c.carrier).where(carriers.c.carrier.is_not(None))
    )


def inbound_from_row(row: Any) -> InboundMessage:
    return InboundMessage(
        id=row.id,
        carrier=row.carrier,
        source_addr=row.source_addr,
        source_addr_ton=row.source_addr_ton,
        source_addr_npi=row.source_addr_npi,
        msisdn=row.msisdn,
        destination_addr=row.destination_addr,
        text=row.text,
        received_at=row.received_at,
        state=InboundState(row.state),
        outcome=Outcome(row.outcome) if row.outcome is not None else None,
    )


def outbound_from_row(row: Any) -> OutboundMessage:
    return OutboundMessage(
        id=row.id,
        inbound_id=row.inbound_id,
        carrier=row.carrier,
        destination_addr=row.destination_addr,
        dest_addr_ton=row.dest_addr_ton,
        dest_addr_npi=row.dest_addr_npi,
        body=row.body,
        state=OutboundState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        smsc_message_id=row.smsc_message_id,
        last_status=row.last_status,
        source_addr=row.source_addr,
        source_addr_ton=row.source_addr_ton,
        source_addr_npi=row.source_addr_npi,
    )


INBOUND_COLUMNS = (
    InboundRow.id,
    InboundRow.carrier,
    InboundRow.source_addr,
    InboundRow.source_addr_ton,
    InboundRow.source_addr_npi,
    InboundRow.msisdn,
    InboundRow.destination_addr,
    InboundRow.text,
    InboundRow.received_at,
    InboundRow.state,
    InboundRow.outcome,
)
OUTBOUND_COLUMNS = (
    OutboundRow.id,
    OutboundRow.inbound_id,
    OutboundRow.carrier,
    OutboundRow.destination_addr,
    OutboundRow.dest_addr_ton,
    OutboundRow.dest_addr_npi,
    OutboundRow.body,
    OutboundRow.state,
    OutboundRow.attempts,
    OutboundRow.next_attempt_at,
    OutboundRow.smsc_message_id,
    OutboundRow.last_status,
    OutboundRow.source_addr,
    OutboundRow.source_addr_ton,
    OutboundRow.source_addr_npi,
)
