"""The events of the SMPP 3.4 core: one frozen attrs class per PDU an ESME meets.

Theory of operation
-------------------
An event is the decoded, typed form of one PDU. ``Connection.next_event()`` returns
them as they are parsed from the wire; ``Connection.send(event)`` turns one into
bytes. Events carry their own ``sequence``: a request gets one from
``Connection.next_sequence()`` before it is sent, a response copies the sequence of
the request it answers. Addresses and C-strings are ``str`` (decoded as ASCII with
``surrogateescape`` so no byte is lost); message bodies stay ``bytes`` (their
meaning depends on ``data_coding`` and is the business of ``_text.py``). An ESME
``Connection`` hands out deliver_sm, submit_sm_resp and bind_resp only after the
edge checks of ``_edge.py``: their strings are then printable ASCII within their
SMPP limits.

``Event`` is a closed union: match it with ``match`` and ``assert_never``; never
subclass these classes (T4).
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

__all__ = [
    "Bind",
    "BindMode",
    "BindResp",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "Event",
    "GenericNack",
    "NeedData",
    "Request",
    "Response",
    "SubmitSm",
    "SubmitSmResp",
    "Tlv",
    "Unbind",
    "UnbindResp",
]


class BindMode(enum.Enum):
    """The three ways to bind (SMPP 3.4 §4.1)."""

    #: bind_transmitter: the ESME may submit, receives nothing.
    TRANSMITTER = "transmitter"
    #: bind_receiver: the SMSC delivers, the ESME may not submit.
    RECEIVER = "receiver"
    #: bind_transceiver: both directions on one TCP connection.
    TRANSCEIVER = "transceiver"


@attrs.frozen(kw_only=True)
class Tlv:
    """An optional parameter kept as it came: tag and raw value bytes."""

    tag: int
    value: bytes


# --- requests ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Bind:
    """bind_transmitter / bind_receiver / bind_transceiver, chosen by ``mode``."""

    sequence: int
    mode: BindMode
    system_id: str
    password: str = attrs.field(repr=False)  # never in a repr, never in a log
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@attrs.frozen(kw_only=True)
class Unbind:
    sequence: int


@attrs.frozen(kw_only=True)
class EnquireLink:
    sequence: int


@attrs.frozen(kw_only=True)
class SubmitSm:
    """submit_sm: a message from the ESME to the SMSC (an MT)."""

    sequence: int
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    #: Optional parameters in wire order; unknown tags are kept, not dropped.
    tlvs: tuple[Tlv, ...] = ()


@attrs.frozen(kw_only=True)
class DeliverSm:
    """deliver_sm: a message from the SMSC to the ESME (an MO, or a receipt when
    ``esm_class & 0x3C == 0x04``). Same body as submit_sm."""

    sequence: int
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: tuple[Tlv, ...] = ()


# --- responses -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BindResp:
    sequence: int
    command_status: int = 0
    mode: BindMode
    system_id: str = ""
    #: Optional parameters (e.g. sc_interface_version 0x0210), in wire order.
    tlvs: tuple[Tlv, ...] = ()


@attrs.frozen(kw_only=True)
class UnbindResp:
    sequence: int
    command_status: int = 0


@attrs.frozen(kw_only=True)
class EnquireLinkResp:
    sequence: int
    command_status: int = 0


@attrs.frozen(kw_only=True)
class SubmitSmResp:
    sequence: int
    command_status: int = 0
    #: Empty when command_status != 0 (SMPP 3.4 §4.4.2: body may be absent).
    message_id: str = ""


@attrs.frozen(kw_only=True)
class DeliverSmResp:
    sequence: int
    command_status: int = 0


@attrs.frozen(kw_only=True)
class GenericNack:
    sequence: int
    command_status: int


@attrs.frozen(kw_only=True)
class NeedData:
    """Returned by ``next_event()`` when the buffer holds no complete PDU."""


Request: TypeAlias = Bind | Unbind | EnquireLink | SubmitSm | DeliverSm
Response: TypeAlias = (
    BindResp | UnbindResp | EnquireLinkResp | SubmitSmResp | DeliverSmResp | GenericNack
)
Event: TypeAlias = Request | Response
