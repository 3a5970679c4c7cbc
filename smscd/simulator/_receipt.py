"""Message ids and delivery receipts as the simulated SMSC writes them.

The SMSC numbers accepted messages with one counter and prints the number either in
lowercase hex (``1d305b4c``) or in zero-padded decimal (``0489708364``). The
``submit_sm_resp`` and the receipt may use different forms, as real SMSCs do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from smscd.smpp import DeliverSm, Tlv

if TYPE_CHECKING:
    import datetime

__all__ = [
    "MESSAGE_STATES",
    "TAG_MESSAGE_STATE",
    "TAG_RECEIPTED_MESSAGE_ID",
    "ReceiptSpec",
    "build_receipt",
    "format_message_id",
    "receipt_text",
]

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427

#: The stat: word of the receipt text and its message_state value (SMPP 3.4 §5.2.28).
MESSAGE_STATES: dict[str, int] = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}

_ESM_CLASS_RECEIPT = 0x04


def format_message_id(number: int, id_format: str) -> str:
    """``number`` as lowercase hex or as decimal zero-padded to 10 digits."""
    if id_format == "hex":
        return f"{number:x}"
    if id_format == "dec":
        return f"{number:010d}"
    raise ValueError(f"unknown message id format {id_format!r}")


def _smpp_date(moment: datetime.datetime) -> str:
    return moment.strftime("%y%m%d%H%M")


def receipt_text(
    *,
    receipt_id: str,
    stat: str,
    submitted_at: datetime.datetime,
    done_at: datetime.datetime,
    text: str,
) -> str:
    """The de-facto standard receipt text (SMPP 3.4 Appendix B)."""
    delivered = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{receipt_id} sub:001 dlvrd:{delivered} submit date:{_smpp_date(submitted_at)}"
        f" done date:{_smpp_date(done_at)} stat:{stat} err:000 text:{text[:20]}"
    )


@attrs.frozen(kw_only=True)
class ReceiptSpec:
    """Everything needed to write the receipt of one accepted submit_sm."""

    message_id: str
    receipt_id: str
    stat: str
    #: The MT's destination: the handset, which becomes the receipt's source.
    handset: str
    handset_ton: int
    handset_npi: int
    #: The MT's source: the short code, which becomes the receipt's destination.
    short_code: str
    short_code_ton: int
    short_code_npi: int
    text: str
    submitted_at: datetime.datetime
    with_tlvs: bool


def build_receipt(spec: ReceiptSpec, *, sequence: int, done_at: datetime.datetime) -> DeliverSm:
    """The deliver_sm (esm_class 0x04) that reports ``spec`` as final."""
    body = receipt_text(
        receipt_id=spec.receipt_id,
        stat=spec.stat,
        submitted_at=spec.submitted_at,
        done_at=done_at,
        text=spec.text,
    )
    tlvs: tuple[Tlv, ...] = ()
    if spec.with_tlvs:
        tlvs = (
            Tlv(tag=TAG_RECEIPTED_MESSAGE_ID, value=spec.receipt_id.encode("ascii") + b"\x00"),
            Tlv(tag=TAG_MESSAGE_STATE, value=bytes([MESSAGE_STATES.get(spec.stat, 7)])),
        )
    return DeliverSm(
        sequence=sequence,
        source_addr_ton=spec.handset_ton,
        source_addr_npi=spec.handset_npi,
        source_addr=spec.handset,
        dest_addr_ton=spec.short_code_ton,
        dest_addr_npi=spec.short_code_npi,
        destination_addr=spec.short_code,
        esm_class=_ESM_CLASS_RECEIPT,
        short_message=body.encode("ascii", "replace"),
        tlvs=tlvs,
    )
