"""An SMSC that speaks real SMPP 3.4 over TCP, for the tests and demos of smscd.

async with open_simulator(SimulatorConfig(port=0)) as sim:
    ...  # bind an ESME to 127.0.0.1:sim.port
    await sim.inject_mo("84327000686", "BH MK 0123456789")
    [mt] = await sim.wait_submitted(1)
    burst = await sim.burst(50, source="84903{i:06d}", text="BH MK 55{i:08d}")
    answers = await burst.wait_answered()
"""

from __future__ import annotations

from smscd.simulator._cli import DEFAULT_CONTROL_PORT, main
from smscd.simulator._config import SimulatorConfig
from smscd.simulator._errors import NoReceiverError, SimulatorError
from smscd.simulator._receipt import format_message_id, receipt_text
from smscd.simulator._simulator import (
    MoBurst,
    MoResponse,
    SessionInfo,
    Simulator,
    SimulatorEventHandler,
    SubmittedSm,
    open_simulator,
    same_number,
)

__all__ = [
    "DEFAULT_CONTROL_PORT",
    "MoBurst",
    "MoResponse",
    "NoReceiverError",
    "SessionInfo",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "SimulatorEventHandler",
    "SubmittedSm",
    "format_message_id",
    "main",
    "open_simulator",
    "receipt_text",
    "same_number",
]
