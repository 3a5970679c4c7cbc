"""Reports per Vietnam day and carrier (``smscd report``) and the status
page's reads of the store."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Date, case, cast, func, literal, literal_column, select, union_all

from smscd.reset import VIETNAM_TZ, InboundState, Outcome
from smscd.store._base import StoreBase
from smscd.store.models import SMS_CHANNEL, ChargeRow, InboundRow, OutboundRow
from smscd.store.types import OutboundState

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ActivityDay", "ChargesDay", "ReceiptsDay", "Reports"]

#: Vietnam's offset from UTC in whole hours (no daylight saving time), for the
#: SQL that groups by local day.
_LOCAL_OFFSET_HOURS = VIETNAM_TZ.utcoffset(None) // timedelta(hours=1)


@attrs.frozen(kw_only=True)
class ChargesDay:
    """One (Vietnam day, carrier, channel) row of the charges report."""

    day: date
    carrier: str
    #: ``sms`` (the MOs to the short code) or ``api:<client>`` (its MTs).
    channel: str = SMS_CHANNEL
    #: MOs received that day, redeliveries (duplicates) excluded; 0 for an API
    #: channel, whose charges are per MT (queued that day).
    mo_received: int
    #: MOs (MTs) of that day with a final charge, and their total.
    charged: int
    amount_vnd: int
    #: MT-mode charges waiting for a receipt; voided charges.
    pending: int
    void: int


@attrs.frozen(kw_only=True)
class ReceiptsDay:
    """One (Vietnam day the reply was queued, carrier) row of the receipts report."""

    day: date
    carrier: str
    accepted: int
    delivered: int
    #: undeliverable (final failure receipt) + failed (submit rejected for good).
    failed: int
    #: accepted, no final receipt yet.
    pending: int


@attrs.frozen(kw_only=True)
class ActivityDay:
    """One (Vietnam day of the MO, carrier) of the status page's last 30 days."""

    day: date
    carrier: str
    #: MOs answered with a new password.
    resets: int
    #: Charges final or pending (voided ones left out), VND.
    charges_vnd: int


def _local_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    lo = datetime.combine(start, time(), VIETNAM_TZ) if start is not None else None
    hi = datetime.combine(end + timedelta(days=1), time(), VIETNAM_TZ) if end is not None else None
    return lo, hi


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


class Reports(StoreBase):
    """The charges and receipts reports and the status page's figures; a part
    of ``SqlStore``."""

    def _local_day(self, column: Any) -> Any:
        # Constants are rendered inline (not bound) so that the GROUP BY
        # expression is textually the one in the select list on PostgreSQL.
        if self._postgres:
            return cast(
                func.timezone(literal_column("'UTC'"), column)
                + literal_column(f"interval '{_LOCAL_OFFSET_HOURS} hours'"),
                Date,
            )
        return func.date(column, literal_column(f"'+{_LOCAL_OFFSET_HOURS} hours'"))

    def charges_report(self, *, start: date | None, end: date | None) -> list[ChargesDay]:
        """Per Vietnam day and carrier, inclusive dates (None: open), split by
        channel: the MOs to the short code by the day they were received, the
        API clients' MTs by the day they were queued."""
        rows = self._sms_charges(start, end) + self._api_charges(start, end)
        return sorted(rows, key=lambda r: (r.day, r.carrier, r.channel))

    def _api_charges(self, start: date | None, end: date | None) -> list[ChargesDay]:
        lo, hi = _local_bounds(start, end)
        day = self._local_day(ChargeRow.created_at).label("day")

        def count_if(condition: Any, value: Any = 1) -> Any:
            return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

        stmt = (
            select(
                day,
                ChargeRow.carrier,
                ChargeRow.channel,
                count_if(ChargeRow.state == "final"),
                count_if(ChargeRow.state == "final", ChargeRow.amount_vnd),
                count_if(ChargeRow.state == "pending"),
                count_if(ChargeRow.state == "void"),
            )
            .where(
                ChargeRow.outbound_id.is_not(None),
                *([ChargeRow.created_at >= lo] if lo is not None else []),
                *([ChargeRow.created_at < hi] if hi is not None else []),
            )
            .group_by(day, ChargeRow.carrier, ChargeRow.channel)
        )
        with self._read() as conn:
            return [
                ChargesDay(
                    day=_as_date(r[0]),
                    carrier=r[1],
                    channel=r[2],
                    mo_received=0,
                    charged=int(r[3]),
                    amount_vnd=int(r[4]),
                    pending=int(r[5]),
                    void=int(r[6]),
                )
                for r in conn.execute(stmt)
            ]

    def _sms_charges(self, start: date | None, end: date | None) -> list[ChargesDay]:
        """The MOs' part: per Vietnam day of the MO and carrier."""
        lo, hi = _local_bounds(start, end)
        day = self._local_day(InboundRow.received_at).label("day")

        def count_if(condition: Any, value: Any = 1) -> Any:
            return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

        stmt = (
            select(
                day,
                InboundRow.carrier,
                func.count(InboundRow.id),
                count_if(ChargeRow.state == "final"),
                count_if(ChargeRow.state == "final", ChargeRow.amount_vnd),
                count_if(ChargeRow.state == "pending"),
                count_if(ChargeRow.state == "void"),
            )
            .select_from(InboundRow)
            .outerjoin(ChargeRow, ChargeRow.inbound_id == InboundRow.id)
            .where(
                InboundRow.state != InboundState.DUPLICATE.value,
                # Not the API's reset calls: they are no MO and carry no charge.
                InboundRow.channel == SMS_CHANNEL,
                *([InboundRow.received_at >= lo] if lo is not None else []),
                *([InboundRow.received_at < hi] if hi is not None else []),
            )
            .group_by(day, InboundRow.carrier)
            .order_by(day, InboundRow.carrier)
        )
        with self._read() as conn:
            return [
                ChargesDay(
                    day=_as_date(r[0]),
                    carrier=r[1],
                    mo_received=int(r[2]),
                    charged=int(r[3]),
                    amount_vnd=int(r[4]),
                    pending=int(r[5]),
                    void=int(r[6]),
                )
                for r in conn.execute(stmt)
            ]

    def receipts_report(self, *, start: date | None, end: date | None) -> list[ReceiptsDay]:
        """Per Vietnam day the reply was queued and carrier, inclusive dates."""
        lo, hi = _local_bounds(start, end)
        day = self._local_day(OutboundRow.created_at).label("day")

        def count_if(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        stmt = (
            select(
                day,
                OutboundRow.carrier,
                count_if(OutboundRow.accepted_at.is_not(None)),
                count_if(OutboundRow.state == OutboundState.DELIVERED.value),
                count_if(
                    OutboundRow.state.in_(
                        [OutboundState.UNDELIVERABLE.value, OutboundState.FAILED.value]
                    )
                ),
                count_if(OutboundRow.state == OutboundState.ACCEPTED.value),
            )
            .where(
                *([OutboundRow.created_at >= lo] if lo is not None else []),
                *([OutboundRow.created_at < hi] if hi is not None else []),
            )
            .group_by(day, OutboundRow.carrier)
            .order_by(day, OutboundRow.carrier)
        )
        with self._read() as conn:
            return [
                ReceiptsDay(
                    day=_as_date(r[0]),
                    carrier=r[1],
                    accepted=int(r[2]),
                    delivered=int(r[3]),
                    failed=int(r[4]),
                    pending=int(r[5]),
                )
                for r in conn.execute(stmt)
            ]

    # -- the status page ------------------------------------------------------

    def outbox_summary(self, carriers: Sequence[str]) -> tuple[dict[str, int], datetime | None]:
        """Queued replies of each of ``carriers``, and when the oldest of them
        was queued. One index search per carrier (carrier, state): the cost
        follows the queue, not the history (a GROUP BY carrier would scan the
        whole index)."""
        if not carriers:
            return {}, None
        parts = [
            select(
                literal(carrier).label("carrier"),
                func.count().label("n"),
                func.min(OutboundRow.created_at).label("oldest"),
            ).where(OutboundRow.carrier == carrier, OutboundRow.state == OutboundState.QUEUED.value)
            for carrier in carriers
        ]
        stmt = union_all(*parts) if len(parts) > 1 else parts[0]
        with self._read() as conn:
            rows = list(conn.execute(stmt))
        depth = {carrier: int(n) for carrier, n, _oldest in rows if n}
        oldest = min((at for _c, _n, at in rows if at is not None), default=None)
        return depth, oldest

    def daily_activity(self, *, start: date) -> list[ActivityDay]:
        """Resets and charges per Vietnam day of the MO and carrier, from
        ``start`` on (redeliveries left out, as in the charges report)."""
        lo, _hi = _local_bounds(start, None)
        day = self._local_day(InboundRow.received_at).label("day")
        counted = ChargeRow.state.in_(("final", "pending"))
        stmt = (
            select(
                day,
                InboundRow.carrier,
                func.coalesce(
                    func.sum(case((InboundRow.outcome == Outcome.RESET_OK.value, 1), else_=0)), 0
                ),
                func.coalesce(func.sum(case((counted, ChargeRow.amount_vnd), else_=0)), 0),
            )
            .select_from(InboundRow)
            .outerjoin(ChargeRow, ChargeRow.inbound_id == InboundRow.id)
            .where(InboundRow.state != InboundState.DUPLICATE.value, InboundRow.received_at >= lo)
            .group_by(day, InboundRow.carrier)
            .order_by(day, InboundRow.carrier)
        )
        with self._read() as conn:
            return [
                ActivityDay(
                    day=_as_date(r[0]), carrier=r[1], resets=int(r[2]), charges_vnd=int(r[3])
                )
                for r in conn.execute(stmt)
            ]
