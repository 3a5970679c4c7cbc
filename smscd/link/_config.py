"""Configuration of one SMSC bind."""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING

import attrs

from smscd.smpp import IdFormat

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BindKind", "LinkConfig"]


class BindKind(enum.Enum):
    """How the link binds to the SMSC."""

    #: One TCP connection, bind_transceiver: submits and deliveries share it.
    TRANSCEIVER = "transceiver"
    #: Two TCP connections: bind_transmitter for submits, bind_receiver for
    #: deliveries. The link is bound when both are.
    TRANSMITTER_RECEIVER = "transmitter+receiver"


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _c_octet_string(limit: int) -> Callable[[object, attrs.Attribute[str], str], None]:
    """SMPP 3.4 C-Octet String fields hold at most ``limit`` characters (plus NUL)."""

    def check(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
        if len(value.encode("ascii", "surrogateescape")) > limit:
            # The message names the field, never the value (it may be the password).
            raise ValueError(f"{attribute.name} is longer than SMPP's {limit} characters")

    return check


@attrs.frozen(kw_only=True)
class LinkConfig:
    """Everything one :class:`~smscd.link.Link` needs to know about its carrier."""

    #: Carrier name, e.g. ``"viettel"``; goes into every log line and item.
    name: str
    host: str
    port: int
    system_id: str = attrs.field(validator=_c_octet_string(15))
    #: Never in a repr, never in a log.
    password: str = attrs.field(repr=False, validator=_c_octet_string(8))
    system_type: str = attrs.field(default="", validator=_c_octet_string(12))
    bind: BindKind = BindKind.TRANSCEIVER
    #: Maximum submit_sm outstanding at once.
    window: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    #: Maximum submit_sm per second (spaced 1/throughput apart); 0 = no cap.
    throughput: float = attrs.field(default=50.0, validator=_non_negative)
    enquire_link_interval: float = attrs.field(default=30.0, validator=_positive)
    response_timeout: float = attrs.field(default=10.0, validator=_positive)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    backoff_initial: float = attrs.field(default=1.0, validator=_positive)
    backoff_max: float = attrs.field(default=60.0, validator=_positive)
    #: Whole-bind pause after ESME_RTHROTTLED / ESME_RMSGQFUL.
    throttle_pause: float = attrs.field(default=1.0, validator=_non_negative)
    #: An inbound item not acked by the caller by then is answered ESME_RX_T_APPN.
    ack_timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Most deliver_sm (MOs and receipts) read and not yet answered; at the limit
    #: the link stops reading the socket until an answer frees room.
    max_unacked: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    #: data_coding 0 read as GSM 03.38 (else as ASCII).
    gsm7_default: bool = True
    message_id_format: IdFormat = IdFormat.AUTO
    stop_timeout: float = attrs.field(default=5.0, validator=_positive)
