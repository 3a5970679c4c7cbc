"""Storage: the store's own types and Protocols here, SQLAlchemy behind them in ``sql``.

The store implements the pipeline's ``smscd.reset.ResetStore`` and takes and
returns the pipeline's domain values (``smscd.reset.Decision``...); it imports
``smscd.reset``, never the reverse. Importing this package never imports
SQLAlchemy; ``smscd.store.sql`` does.
"""

from __future__ import annotations

from smscd.store.types import (
    AlreadyDecided,
    DecisionStore,
    EarlyReceipt,
    IntakeStore,
    NewInbound,
    NewReceipt,
    OutboundMessage,
    OutboundState,
    OutboxStore,
    QuarantinedItem,
    ReceiptMatch,
    StoreError,
    StoreRejected,
    StoreUnavailable,
    WalCheckpoint,
)

__all__ = [
    "AlreadyDecided",
    "DecisionStore",
    "EarlyReceipt",
    "IntakeStore",
    "NewInbound",
    "NewReceipt",
    "OutboundMessage",
    "OutboundState",
    "OutboxStore",
    "QuarantinedItem",
    "ReceiptMatch",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "WalCheckpoint",
]
