"""API resets: a ``POST /v1/resets`` recorded like an MO and decided in one
transaction.

A call of the HTTP API is answered in its response, not by SMS, so its
decision has no reply to queue and no charge to record: the transaction
inserts its ``inbound_messages`` row already DECIDED (``carrier`` and
``destination_addr`` ``'api'``, the channel and client that asked, the text
``BH MK <code>``, the outcome) and, for a RESET_OK, sets the new password hash
and must-change flag on the account (``set_passwords``, shared with the
decisions of MOs). The row exists only once decided, so recovery never meets
an API call, and a failure writes nothing.

The row counts in the rate limits like any other (``reset_counts`` counts
RESET_OK rows of every carrier and channel by ``msisdn`` and code), and the
intake never takes an MO for a redelivery of it: redeliveries are matched
within one carrier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import insert

from smscd.reset import InboundState
from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store._decisions import check_decisions, set_passwords
from smscd.store.models import InboundRow

if TYPE_CHECKING:
    from datetime import datetime

    from smscd.reset import Decision

__all__ = ["API_CARRIER", "ApiResets"]

#: ``carrier`` and ``destination_addr`` of an API call's row.
API_CARRIER = "api"
#: The sender's number is recorded international (TON 1, NPI 1: E.164).
_TON_INTERNATIONAL = 1
_NPI_E164 = 1

_INSERT_CALL = prepared(insert(InboundRow))


class ApiResets(StoreBase):
    """``commit_api_reset``; a part of ``SqlStore``."""

    def commit_api_reset(
        self,
        decision: Decision,
        *,
        msisdn: str,
        text: str,
        channel: str,
        client_id: int,
        received_at: datetime,
    ) -> int:
        """One transaction: the call's row, DECIDED with the decision's outcome
        and code, and for a RESET_OK the account's new password hash and
        must-change flag. Returns the row's id. ``decision.inbound_id`` is
        ignored (the row is created here). Raises (and writes nothing) for a
        RESET_OK without a hash or whose code has no account, or when the
        database fails (``StoreUnavailable``, ``StoreRejected``)."""
        check_decisions([decision])
        row = {
            "carrier": API_CARRIER,
            "source_addr": msisdn,
            "source_addr_ton": _TON_INTERNATIONAL,
            "source_addr_npi": _NPI_E164,
            "msisdn": msisdn,
            "destination_addr": API_CARRIER,
            "text": text,
            "received_at": received_at,
            "state": InboundState.DECIDED.value,
            "outcome": decision.outcome.value,
            "bhxh_code": decision.bhxh_code,
            "decided_at": decision.decided_at,
            "duplicate_of": None,
            "claimed_by": None,
            "claimed_at": None,
            "channel": channel,
            "client_id": client_id,
        }
        with self._write() as conn:
            (call_id,) = self._insert_numbered(conn, _INSERT_CALL, [row])
            set_passwords(conn, [decision])
        return call_id
