"""What the simulator raises when it cannot do what was asked."""

from __future__ import annotations

__all__ = ["NoReceiverError", "SimulatorError"]


class SimulatorError(Exception):
    """The simulator cannot do what was asked (no receiver, connection lost, ...)."""


class NoReceiverError(SimulatorError):
    """No session is bound as receiver or transceiver to take a deliver_sm."""
