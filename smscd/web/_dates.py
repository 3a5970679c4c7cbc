"""How the status page writes a moment: ISO 8601 in UTC, and the Vietnam day
the store's reports count by."""

from __future__ import annotations

from datetime import UTC, date, datetime

from smscd.reset import VIETNAM_TZ

__all__ = ["iso", "vietnam_day"]


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC to the second: ``2021-10-15T05:30:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vietnam_day(moment: datetime) -> date:
    """The Vietnam (UTC+7) day of ``moment``: the day of the store's reports."""
    return moment.astimezone(VIETNAM_TZ).date()
