"""Storage: domain types and Protocols here, SQLAlchemy behind them in ``sql``.

Importing this package never imports SQLAlchemy; ``smscd.store.sql`` does.
"""

from __future__ import annotations

from smscd.store.types import (
    Account,
    AlreadyDecided,
    ChargingMode,
    Decision,
    DecisionStore,
    EarlyReceipt,
    InboundMessage,
    InboundState,
    IntakeStore,
    NewInbound,
    NewReceipt,
    OutboundMessage,
    OutboundState,
    OutboxStore,
    Outcome,
    QuarantinedItem,
    ReceiptMatch,
    ResetCounts,
    ResetStore,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)

__all__ = [
    "Account",
    "AlreadyDecided",
    "ChargingMode",
    "Decision",
    "DecisionStore",
    "EarlyReceipt",
    "InboundMessage",
    "InboundState",
    "IntakeStore",
    "NewInbound",
    "NewReceipt",
    "OutboundMessage",
    "OutboundState",
    "OutboxStore",
    "Outcome",
    "QuarantinedItem",
    "ReceiptMatch",
    "ResetCounts",
    "ResetStore",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
]
