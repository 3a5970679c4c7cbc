"""The settings of the bundled SMSC simulator."""

from __future__ import annotations

import attrs

__all__ = ["SimulatorConfig"]

_ID_FORMATS = ("hex", "dec")


@attrs.define(kw_only=True)
class SimulatorConfig:
    """How the simulated SMSC listens, authenticates and reports.

    ``port = 0`` asks the kernel for a free port (read it back from ``Simulator.port``);
    ``control_port = 0`` does the same for the control listener.
    """

    host: str = "127.0.0.1"
    port: int = 0
    #: The one account the SMSC accepts: a wrong system_id is answered ESME_RINVSYSID,
    #: a wrong password ESME_RINVPASWD.
    system_id: str = "smscd"
    password: str = attrs.field(default="secret", repr=False)
    #: Default destination of injected MOs.
    short_code: str = "8079"
    #: Seconds between accepting a submit_sm that asks for a receipt and sending it.
    receipt_delay: float = attrs.field(default=0.2, validator=attrs.validators.ge(0.0))
    #: Final state reported in receipts (DELIVRD, UNDELIV, EXPIRED, REJECTD, ...).
    receipt_stat: str = "DELIVRD"
    #: Form of the message_id in submit_sm_resp: "hex" (lowercase) or "dec" (10 digits).
    submit_id_format: str = attrs.field(default="hex", validator=attrs.validators.in_(_ID_FORMATS))
    #: Form of the id inside receipts (TLV receipted_message_id and the text ``id:``).
    receipt_id_format: str = attrs.field(default="dec", validator=attrs.validators.in_(_ID_FORMATS))
    #: Add the receipted_message_id and message_state TLVs to receipts (else text only).
    receipt_tlvs: bool = True
    #: When set, a line-JSON control listener on 127.0.0.1:control_port.
    control_port: int | None = None
    #: deliver_sm (MOs and receipts) one session keeps unanswered at most; real
    #: SMSCs use about 10, benchmarks raise it to keep a wide ESME window full.
    deliver_window: int = attrs.field(default=10, validator=attrs.validators.ge(1))
