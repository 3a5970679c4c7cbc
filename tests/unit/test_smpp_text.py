"""data_coding, GSM 03.38, user data headers and reassembly of long MOs."""

from __future__ import annotations

import itertools

import pytest

from smscd.smpp import (
    AssembledMessage,
    Concat,
    DeliverSm,
    LocalProtocolError,
    MessageAssembler,
    Tlv,
    decode_short_message,
    encode_gsm7,
    is_gsm7,
    split_udh,
)

# --- decode_short_message ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "payload", "text"),
    [
        (0, b"BH MK 0123456789", "BH MK 0123456789"),
        (0, b"\x00\x01\x02\x11\x1f\x5b\x7f", "@£$_ÉÄà"),
        (
            0,
            b"\x1b\x65 \x1b\x28\x1b\x29 \x1b\x3c\x1b\x3e \x1b\x2f\x1b\x40\x1b\x3d\x1b\x14",
            "€ {} [] \\|~^",
        ),
        (0, b"a\x1b\x41b", "aAb"),  # unknown escape: the base character
        (0, b"ab\x1b", "ab "),  # lone trailing escape
        (0, b"a\xffb", "a\ufffdb"),  # not a septet
        (1, b"BH MK", "BH MK"),
        (1, b"a\xe9", "a\ufffd"),
        (3, b"caf\xe9", "café"),
        (8, "Cấp lại".encode("utf-16-be"), "Cấp lại"),
        (8, "😀".encode("utf-16-be"), "😀"),  # surrogate pair
        (8, b"\x00a\x00", "a\ufffd"),  # odd length
        (8, b"\xd8\x3d\x00a", "\ufffda"),  # lone high surrogate
        (4, b"\x01\xfe", "\x01þ"),  # binary: latin-1, best effort
        (0xF0, b"\x00", "@"),  # message class group, GSM 7-bit
        (0xF4, b"\x00", "\ufffd"),  # message class group, 8-bit data; NUL is not text
        (0x42, b"ok", "ok"),  # unknown: latin-1
    ],
)
def test_decode_short_message(data_coding: int, payload: bytes, text: str) -> None:
    assert decode_short_message(data_coding, payload) == text


def test_data_coding_zero_as_ascii_when_not_gsm() -> None:
    assert decode_short_message(0, b"@_\x00", gsm7_default=False) == "@_\ufffd"
    assert decode_short_message(0, b"a\x80", gsm7_default=False) == "a\ufffd"


def test_decode_never_raises_on_any_byte() -> None:
    every = bytes(range(256))
    for dc in range(256):
        assert isinstance(decode_short_message(dc, every), str)


@pytest.mark.parametrize("gsm7_default", [True, False])
def test_decoded_text_can_always_be_stored(gsm7_default: bool) -> None:
    """No lone surrogate (UTF-8 refuses it) and no NUL (PostgreSQL text refuses it),
    whatever the octets and the data_coding: odd UCS-2, half pairs, NULs."""
    payloads = [bytes(range(256)), b"\xd8\x00", b"\xdc\x00\x00", b"\x00\x00", b"\x00"]
    for dc in range(256):
        for payload in payloads:
            text = decode_short_message(dc, payload, gsm7_default=gsm7_default)
            text.encode("utf-8")  # raises on a lone surrogate
            assert "\0" not in text


# --- encode_gsm7 / is_gsm7 -------------------------------------------------------------


def test_encode_gsm7_exact_septets() -> None:
    assert encode_gsm7("BH MK @£") == b"BH MK \x00\x01"
    assert encode_gsm7("[€]") == b"\x1b\x3c\x1b\x65\x1b\x3e"


def test_encode_gsm7_round_trips_every_character() -> None:
    text = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà^{}\\[~]|€\f"
    assert decode_short_message(0, encode_gsm7(text)) == text


@pytest.mark.parametrize("text", ["Cấp lại", "`", "é\u0301", "\x1b"])
def test_encode_gsm7_rejects_what_gsm_lacks(text: str) -> None:
    assert not is_gsm7(text)
    with pytest.raises(LocalProtocolError):
        encode_gsm7(text)


def test_reply_templates_are_gsm7() -> None:
    assert is_gsm7("Cap lai mat khau thanh cong. Tai khoan: 0123456789/Mat khau: 123456")
    assert is_gsm7(
        "Ma so BHXH khong dung cau truc (phai gom 10 chu so). Soan tin: BH MK <Ma so BHXH> gui 8079"
    )


# --- split_udh ------------------------------------------------------------------------


def test_udh_8bit_reference() -> None:
    assert split_udh(0x40, b"\x05\x00\x03\x2a\x03\x02hello") == (
        Concat(ref=0x2A, total=3, seqnum=2),
        b"hello",
    )


def test_udh_16bit_reference() -> None:
    assert split_udh(0x40, b"\x06\x08\x04\x12\x34\x02\x01hi") == (
        Concat(ref=0x1234, total=2, seqnum=1),
        b"hi",
    )


def test_udh_other_elements_are_skipped() -> None:
    # port addressing (0x05) then concatenation
    data = b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x02xy"
    assert split_udh(0x43, data) == (Concat(ref=7, total=2, seqnum=2), b"xy")
    assert split_udh(0x40, b"\x06\x05\x04\x0b\x84\x23\xf0xy") == (None, b"xy")


def test_no_udhi_bit_means_no_udh() -> None:
    data = b"\x05\x00\x03\x2a\x03\x02hello"
    assert split_udh(0x00, data) == (None, data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x09\x00\x03\x01",  # UDHL past the end
        b"\x04\x00\x03\x01\x02",  # element longer than the header
        b"\x01\x00",  # element header cut
    ],
)
def test_malformed_udh_is_no_udh(data: bytes) -> None:
    assert split_udh(0x40, data) == (None, data)


def test_impossible_concat_numbers_are_ignored() -> None:
    assert split_udh(0x40, b"\x05\x00\x03\x01\x02\x03x") == (None, b"x")  # part 3 of 2
    assert split_udh(0x40, b"\x05\x00\x03\x01\x00\x00x") == (None, b"x")


# --- MessageAssembler ------------------------------------------------------------------


def mo(seq: int, short_message: bytes, *, esm_class: int = 0, **kw: object) -> DeliverSm:
    return DeliverSm(
        sequence=seq,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="84912345678",
        destination_addr="8079",
        esm_class=esm_class,
        short_message=short_message,
        **kw,  # type: ignore[arg-type]
    )


def test_single_part_is_returned_at_once() -> None:
    assembler = MessageAssembler()
    assert assembler.feed(mo(5, b"BH MK 0123456789"), now=0.0) == AssembledMessage(
        source_addr="84912345678",
        source_addr_ton=1,
        source_addr_npi=1,
        destination_addr="8079",
        text="BH MK 0123456789",
        data_coding=0,
        sequences=(5,),
    )
    assert len(assembler) == 0


def test_message_payload_used_when_short_message_empty() -> None:
    deliver = mo(6, b"", tlvs=(Tlv(tag=0x0424, value=b"BH MK 0123456789"),))
    message = MessageAssembler().feed(deliver, now=0.0)
    assert message is not None
    assert message.text == "BH MK 0123456789"


def _udh8(ref: int, total: int, n: int, body: bytes) -> bytes:
    return bytes([5, 0, 3, ref, total, n]) + body


def _udh16(ref: int, total: int, n: int, body: bytes) -> bytes:
    return bytes([6, 8, 4, ref >> 8, ref & 0xFF, total, n]) + body


BODIES = [b"BH ", b"MK 01234", b"56789"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("kind", ["udh8", "udh16", "sar"])
def test_reassembly_in_any_order(order: tuple[int, ...], kind: str) -> None:
    assembler = MessageAssembler()
    results = []
    for i in order:
        n = i + 1
        if kind == "udh8":
            deliver = mo(100 + n, _udh8(0xAB, 3, n, BODIES[i]), esm_class=0x40)
        elif kind == "udh16":
            deliver = mo(100 + n, _udh16(0xABCD, 3, n, BODIES[i]), esm_class=0x40)
        else:
            tlvs = (
                Tlv(tag=0x020C, value=b"\x12\x34"),
                Tlv(tag=0x020E, value=b"\x03"),
                Tlv(tag=0x020F, value=bytes([n])),
            )
            deliver = mo(100 + n, BODIES[i], tlvs=tlvs)
        results.append(assembler.feed(deliver, now=float(i)))
    assert results[:2] == [None, None]
    message = results[2]
    assert message is not None
    assert message.text == "BH MK 0123456789"
    assert message.sequences == tuple(100 + i + 1 for i in order)
    assert len(assembler) == 0


def test_parts_of_different_messages_do_not_mix() -> None:
    assembler = MessageAssembler()
    assert assembler.feed(mo(1, _udh8(1, 2, 1, b"A"), esm_class=0x40), now=0) is None
    assert assembler.feed(mo(2, _udh8(2, 2, 1, b"X"), esm_class=0x40), now=0) is None
    other_sender = DeliverSm(
        sequence=3, source_addr="84999999999", esm_class=0x40, short_message=_udh8(1, 2, 2, b"?")
    )
    assert assembler.feed(other_sender, now=0) is None
    done = assembler.feed(mo(4, _udh8(1, 2, 2, b"B"), esm_class=0x40), now=0)
    assert done is not None
    assert done.text == "AB"
    assert done.sequences == (1, 4)
    assert len(assembler) == 2


def test_duplicate_part_keeps_the_first_and_its_sequence_is_acked() -> None:
    assembler = MessageAssembler()
    assert assembler.feed(mo(1, _udh8(9, 2, 1, b"A"), esm_class=0x40), now=0) is None
    assert assembler.feed(mo(2, _udh8(9, 2, 1, b"Z"), esm_class=0x40), now=0) is None
    done = assembler.feed(mo(3, _udh8(9, 2, 2, b"B"), esm_class=0x40), now=0)
    assert done is not None
    assert done.text == "AB"
    assert done.sequences == (1, 2, 3)


def test_ucs2_surrogate_pair_split_across_parts() -> None:
    raw = "a😀".encode("utf-16-be")  # 00 61 d8 3d de 00
    assembler = MessageAssembler()
    first = mo(1, _udh8(3, 2, 1, raw[:4]), esm_class=0x40, data_coding=8)
    second = mo(2, _udh8(3, 2, 2, raw[4:]), esm_class=0x40, data_coding=8)
    assert assembler.feed(first, now=0) is None
    done = assembler.feed(second, now=0)
    assert done is not None
    assert done.text == "a😀"
    assert done.data_coding == 8


def test_expire_drops_stale_partials_only() -> None:
    assembler = MessageAssembler()
    assembler.feed(mo(1, _udh8(1, 3, 2, b"MK"), esm_class=0x40), now=0.0)
    assembler.feed(mo(2, _udh8(1, 3, 1, b"BH "), esm_class=0x40), now=30.0)
    assembler.feed(mo(3, _udh8(2, 2, 1, b"new"), esm_class=0x40), now=50.0)
    assert assembler.expire(59.9) == []
    [dropped] = assembler.expire(60.0)
    assert dropped.ref == 1
    assert dropped.total == 3
    assert dropped.received == (1, 2)
    assert dropped.text == "BH MK"
    assert dropped.sequences == (1, 2)
    assert len(assembler) == 1
    assert [p.ref for p in assembler.expire(200.0, max_age=60.0)] == [2]
