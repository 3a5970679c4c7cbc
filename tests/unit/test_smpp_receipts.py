"""Delivery receipts (TLV and text forms), message id matching, command statuses."""

from __future__ import annotations

import pytest

from smscd.smpp import (
    CommandStatus,
    DeliverSm,
    IdFormat,
    Receipt,
    ReceiptError,
    Tlv,
    is_receipt,
    is_temporary,
    is_throttling,
    message_id_keys,
    parse_receipt,
    safe_message_id,
)


def receipt(text: bytes = b"", *tlvs: Tlv, esm_class: int = 0x04) -> DeliverSm:
    return DeliverSm(
        sequence=1,
        source_addr="84912345678",
        destination_addr="8079",
        esm_class=esm_class,
        short_message=text,
        tlvs=tlvs,
    )


@pytest.mark.parametrize(
    ("esm_class", "expected"),
    [
        (0x00, False),
        (0x04, True),
        (0x08, True),  # SME delivery acknowledgement (Kannel accepts it)
        (0x20, True),  # intermediate delivery notification (Kannel accepts it)
        (0x44, True),  # receipt with UDHI
        (0x07, True),  # receipt with a messaging mode set
        (0x10, False),  # manual/user acknowledgement
        (0x40, False),
        (0x0C, False),
    ],
)
def test_is_receipt(esm_class: int, expected: bool) -> None:
    assert is_receipt(receipt(esm_class=esm_class)) is expected


TEXT_10 = (
    b"id:0489708364 sub:001 dlvrd:001 submit date:2110151230 done date:2110151231 "
    b"stat:DELIVRD err:000 text:Cap lai mat khau"
)


def test_text_receipt_with_10_digit_dates() -> None:
    assert parse_receipt(receipt(TEXT_10)) == Receipt(
        message_id="0489708364",
        stat="DELIVRD",
        err="000",
        final=True,
        submit_date="2110151230",
        done_date="2110151231",
    )


def test_text_receipt_with_12_digit_dates_and_odd_case() -> None:
    text = (
        b"ID:1D305B4C Sub:001 DLVRD:000 Submit Date:211015123005 Done Date:211015123107 "
        b"Stat:undeliv Err:0a1 Text:"
    )
    assert parse_receipt(receipt(text)) == Receipt(
        message_id="1D305B4C",
        stat="UNDELIV",
        err="0a1",
        final=True,
        submit_date="211015123005",
        done_date="211015123107",
    )


def test_text_receipt_with_missing_fields() -> None:
    assert parse_receipt(receipt(b"id:77 stat:ENROUTE")) == Receipt(
        message_id="77", stat="ENROUTE", err="", final=False, submit_date="", done_date=""
    )


def test_long_state_names_are_normalised() -> None:
    assert parse_receipt(receipt(b"id:1 stat:DELIVERED")).stat == "DELIVRD"
    accepted = parse_receipt(receipt(b"id:1 stat:accepted"))
    assert accepted.stat == "ACCEPTD"
    assert not accepted.final


def test_tlvs_win_over_the_text() -> None:
    deliver = receipt(
        TEXT_10,
        Tlv(tag=0x001E, value=b"1d305b4c\x00"),
        Tlv(tag=0x0427, value=b"\x05"),
    )
    parsed = parse_receipt(deliver)
    assert parsed.message_id == "1d305b4c"
    assert parsed.stat == "UNDELIV"
    assert parsed.err == "000"
    assert parsed.submit_date == "2110151230"


@pytest.mark.parametrize(
    ("state", "stat", "final"),
    [
        (1, "ENROUTE", False),
        (2, "DELIVRD", True),
        (3, "EXPIRED", True),
        (4, "DELETED", True),
        (5, "UNDELIV", True),
        (6, "ACCEPTD", False),
        (7, "UNKNOWN", True),
        (8, "REJECTD", True),
    ],
)
def test_tlv_only_receipt(state: int, stat: str, final: bool) -> None:
    deliver = receipt(
        b"",
        Tlv(tag=0x001E, value=b"abc123\x00"),
        Tlv(tag=0x0427, value=bytes([state])),
        Tlv(tag=0x0423, value=b"\x03\x00\x45"),
    )
    assert parse_receipt(deliver) == Receipt(
        message_id="abc123", stat=stat, err="069", final=final, submit_date="", done_date=""
    )


def test_receipt_text_in_message_payload() -> None:
    deliver = receipt(b"", Tlv(tag=0x0424, value=TEXT_10))
    assert parse_receipt(deliver).message_id == "0489708364"


@pytest.mark.parametrize(
    "deliver",
    [
        receipt(b"hello"),
        receipt(b"sub:001 stat:DELIVRD"),
        receipt(b"id:123 sub:001"),
        receipt(b"", Tlv(tag=0x001E, value=b"\x00"), Tlv(tag=0x0427, value=b"\x02")),
        receipt(b"", Tlv(tag=0x001E, value=b"42\x00")),
    ],
)
def test_unusable_receipts_raise_receipt_error(deliver: DeliverSm) -> None:
    with pytest.raises(ReceiptError):
        parse_receipt(deliver)
    assert issubclass(ReceiptError, ValueError)


# --- message ids --------------------------------------------------------------------------


def test_hex_and_decimal_forms_share_a_key() -> None:
    assert message_id_keys("1d305b4c", IdFormat.HEX) == frozenset({"489708364"})
    assert message_id_keys("0489708364", IdFormat.DEC) == frozenset({"489708364"})
    assert message_id_keys("1d305b4c") & message_id_keys("0489708364") == {"489708364"}


@pytest.mark.parametrize(
    ("raw", "fmt", "keys"),
    [
        (" 1D305B4C\n", IdFormat.HEX, {"489708364"}),
        ("0000ff", IdFormat.HEX, {"255"}),
        ("000123", IdFormat.DEC, {"123"}),
        ("123", IdFormat.AUTO, {"123", "291"}),
        ("abc", IdFormat.AUTO, {"2748"}),
        ("abc", IdFormat.DEC, {"abc"}),
        ("MSG-42", IdFormat.AUTO, {"msg-42"}),
        ("0x1f", IdFormat.HEX, {"0x1f"}),  # no prefixes
        ("1_000", IdFormat.DEC, {"1_000"}),  # no underscores
        ("-5", IdFormat.DEC, {"-5"}),
        ("", IdFormat.AUTO, {""}),
    ],
)
def test_message_id_keys(raw: str, fmt: IdFormat, keys: set[str]) -> None:
    assert message_id_keys(raw, fmt) == keys


def test_ids_differing_only_in_case_and_zeros_match() -> None:
    assert message_id_keys("00AbC", IdFormat.HEX) == message_id_keys("abc", IdFormat.HEX)


# --- command statuses ---------------------------------------------------------------------


def test_spec_values() -> None:
    assert CommandStatus.ESME_ROK.value == 0
    assert CommandStatus.ESME_RINVMSGLEN.value == 0x01
    assert CommandStatus.ESME_RINVBNDSTS.value == 0x04
    assert CommandStatus.ESME_RMSGQFUL.value == 0x14
    assert CommandStatus.ESME_RSUBMITFAIL.value == 0x45
    assert CommandStatus.ESME_RTHROTTLED.value == 0x58
    assert CommandStatus.ESME_RX_T_APPN.value == 0x64
    assert CommandStatus.ESME_RX_P_APPN.value == 0x65
    assert CommandStatus.ESME_RX_R_APPN.value == 0x66
    assert CommandStatus.ESME_RUNKNOWNERR.value == 0xFF


def test_throttling_and_temporary() -> None:
    assert is_throttling(0x58)
    assert is_throttling(0x14)
    assert not is_throttling(0x08)
    for status in (0x58, 0x14, 0x08, 0x64, 0x45, 0xFF, 0x400):
        assert is_temporary(status), hex(status)
    for status in (0x00, 0x0A, 0x0B, 0x0D, 0x0E, 0x65, 0x66, 0x43):
        assert not is_temporary(status), hex(status)


def test_an_empty_field_does_not_swallow_the_next_key() -> None:
    parsed = parse_receipt(receipt(b"id:42 sub:001 stat: err:000 text:x stat:EXPIRED"))
    assert parsed.stat == "EXPIRED"
    with pytest.raises(ReceiptError):
        parse_receipt(receipt(b"id: sub:001 stat:DELIVRD"))
    assert parse_receipt(receipt(b"id: 99 stat:DELIVRD")).message_id == "99"


# --- hostile ids, stat and err: safe for the store, never an exception --------------------


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        (b"1d305b4c", "1d305b4c"),
        (b"ab\x00\xff", "ab\\x00\\xff"),
        (b"\xe9" * 64, "\\xe9" * 16),  # every octet escaped, cut at 64 characters
        (b"a" * 63 + b"\xe9", "a" * 63),  # cut at the last whole octet that fits
        (b"7" * 5000, "7" * 64),
        ("1d30\udce95b4c", "1d30\\xe95b4c"),  # a codec C-string: surrogateescape
        ("12é34", "12\\xe934"),  # a receipt text: Latin-1
        ("\u4e2d", "\\xe4\\xb8\\xad"),  # anything else: its UTF-8 octets
        ("tab\there", "tab\\x09here"),
    ],
)
def test_safe_message_id(raw: str | bytes, safe: str) -> None:
    assert safe_message_id(raw) == safe
    assert safe_message_id(safe) == safe  # idempotent


@pytest.mark.parametrize(
    ("raw", "fmt", "keys"),
    [
        ("9" * 5000, IdFormat.AUTO, {"9" * 64}),  # far beyond Python's int string limit
        ("f" * 16, IdFormat.HEX, {str(2**64 - 1)}),  # 16 hex digits: still a number
        ("f" * 17, IdFormat.HEX, {"f" * 17}),
        ("9" * 20, IdFormat.AUTO, {"9" * 20}),  # 20 decimal digits: a number, hex too long
        ("1" * 21, IdFormat.DEC, {"1" * 21}),
        ("0" * 30 + "123", IdFormat.AUTO, {"123", "291"}),  # leading zeros are not digits
        ("1d30\udce95b4c", IdFormat.AUTO, {"1d30\\xe95b4c"}),
        ("ID-\u4e2d", IdFormat.AUTO, {"id-\\xe4\\xb8\\xad"}),
    ],
)
def test_message_id_keys_of_hostile_ids(raw: str, fmt: IdFormat, keys: set[str]) -> None:
    assert message_id_keys(raw, fmt) == keys


def test_receipt_ids_from_tlv_and_text_are_made_safe() -> None:
    tlv_id = receipt(
        b"", Tlv(tag=0x001E, value=b" 4\xe92 \x00junk"), Tlv(tag=0x0427, value=b"\x02")
    )
    assert parse_receipt(tlv_id).message_id == "4\\xe92"
    text_id = receipt(b"id:" + b"5" * 300 + b" stat:DELIVRD")
    assert parse_receipt(text_id).message_id == "5" * 64


def test_receipt_stat_and_err_fit_their_columns() -> None:
    parsed = parse_receipt(receipt(b"id:1 stat:" + b"x" * 40 + b" err:" + b"7" * 40))
    assert (parsed.stat, parsed.err) == ("X" * 16, "7" * 16)
    # err and the dates are ASCII: a Latin-1 letter or digit ends them.
    odd = parse_receipt(receipt(b"id:1 stat:DELIVRD err:0\xe91 submit date:211015123\xb2"))
    assert (odd.err, odd.submit_date) == ("0", "")
