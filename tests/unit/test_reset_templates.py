"""Reply texts: the published defaults and what an operator may override."""

from __future__ import annotations

import pytest

from smscd.reset import DEFAULT_TEXTS, Outcome, TemplateError, Templates

# DESIGN.md, byte for byte.
DESIGN_TEXTS = {
    "reset_ok": b"Cap lai mat khau thanh cong. Tai khoan: {code}/Mat khau: {password}",
    "mismatch": (
        b"So dien thoai va ma so BHXH khong khop hoac chua dang ky giao dich dien tu"
        b" voi co quan BHXH"
    ),
    "invalid_code": (
        b"Ma so BHXH khong dung cau truc (phai gom 10 chu so). Soan tin: BH MK <Ma so BHXH>"
        b" gui 8079"
    ),
    "bad_syntax": (
        b"Tin nhan sai cu phap. De lay lai mat khau VssID, soan tin: BH MK <Ma so BHXH> gui 8079"
    ),
    "rate_limited": (
        b"Ban da yeu cau cap lai mat khau qua so lan cho phep. Vui long thu lai sau hoac goi"
        b" 1900.9068"
    ),
}


def test_defaults_are_the_published_texts() -> None:
    templates = Templates()
    for key, expected in DESIGN_TEXTS.items():
        assert getattr(templates, key).encode("ascii") == expected
        assert DEFAULT_TEXTS[key].encode("ascii") == expected
    assert Templates.from_mapping({}) == templates


def test_render_every_outcome() -> None:
    templates = Templates()
    assert (
        templates.render(Outcome.RESET_OK, code="0123456789", password="012345")
        == "Cap lai mat khau thanh cong. Tai khoan: 0123456789/Mat khau: 012345"
    )
    for outcome in (
        Outcome.MISMATCH,
        Outcome.INVALID_CODE,
        Outcome.BAD_SYNTAX,
        Outcome.RATE_LIMITED,
    ):
        rendered = templates.render(outcome, code="0123456789", password="012345")
        assert rendered.encode("ascii") == DESIGN_TEXTS[outcome.value]


def test_reset_ok_needs_code_and_password() -> None:
    with pytest.raises(ValueError, match="needs a code and a password"):
        Templates().render(Outcome.RESET_OK, code="0123456789", password=None)
    with pytest.raises(ValueError, match="needs a code and a password"):
        Templates().render(Outcome.RESET_OK, code=None, password="012345")


def test_valid_overrides() -> None:
    templates = Templates.from_mapping(
        {
            "reset_ok": "Mat khau moi cua {code}: {password}. Doi ngay khi dang nhap!",
            "mismatch": "Khong khop.\nGoi 1900.9068",
            "rate_limited": "Qua 3 lan/ngay (10 lan/thang). Thu lai sau #1",
        }
    )
    assert templates.mismatch == "Khong khop.\nGoi 1900.9068"
    assert templates.bad_syntax == DEFAULT_TEXTS["bad_syntax"]
    assert (
        templates.render(Outcome.RESET_OK, code="0123456789", password="000042")
        == "Mat khau moi cua 0123456789: 000042. Doi ngay khi dang nhap!"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reset_ok": "Tai khoan: {code}"}, "templates.reset_ok: must contain {password}"),
        ({"reset_ok": "Mat khau: {password}"}, "templates.reset_ok: must contain {code}"),
        (
            {"reset_ok": "{code} {password} {pin}"},
            "templates.reset_ok: must not contain {pin}",
        ),
        ({"mismatch": "Ma {code} khong khop"}, "templates.mismatch: must not contain {code}"),
        (
            {"rate_limited": "Het luot, mat khau {password}"},
            "templates.rate_limited: must not contain {password}",
        ),
        ({"bad_syntax": 42}, "templates.bad_syntax: must be a string, not int"),
        ({"bad_syntax": None}, "templates.bad_syntax: must be a string, not NoneType"),
        ({"bad_syntax": "  "}, "templates.bad_syntax: must not be empty"),
        (
            {"mismatch": "Sai s\u1ed1 \u0111i\u1ec7n tho\u1ea1i"},
            "templates.mismatch: must be ASCII (found '\u1ed1' at position 5)",
        ),
        (
            {"mismatch": "Sai\tso"},
            "templates.mismatch: must not contain the control character '\\t'",
        ),
        (
            {"mismatch": "Mail @ bhxh"},
            "templates.mismatch: must not contain '@' (not safe in GSM-7)",
        ),
        ({"mismatch": "ma_so"}, "templates.mismatch: must not contain '_' (not safe in GSM-7)"),
        ({"mismatch": "1000$"}, "templates.mismatch: must not contain '$' (not safe in GSM-7)"),
        ({"mismatch": "`x`"}, "templates.mismatch: must not contain '`' (not safe in GSM-7)"),
        ({"mismatch": "[8079]"}, "templates.mismatch: must not contain '[' (not safe in GSM-7)"),
        ({"mismatch": "a~b"}, "templates.mismatch: must not contain '~' (not safe in GSM-7)"),
        ({"mismatch": "a^b"}, "templates.mismatch: must not contain '^' (not safe in GSM-7)"),
        ({"mismatch": "a|b"}, "templates.mismatch: must not contain '|' (not safe in GSM-7)"),
        ({"mismatch": "a\\b"}, "templates.mismatch: must not contain '\\\\' (not safe in GSM-7)"),
        ({"mismatch": "a {b"}, "templates.mismatch: must not contain '{' (not safe in GSM-7)"),
        ({"mismatch": "a b}"}, "templates.mismatch: must not contain '}' (not safe in GSM-7)"),
        (
            {"reset_ok": "{code} {password} {{x}}"},
            "templates.reset_ok: must not contain {x}",
        ),
        (
            {"reset_ok": "{code}/{password} {0}"},
            "templates.reset_ok: must not contain '{' (not safe in GSM-7)",
        ),
        (
            {"mismatch": "x" * 161},
            "templates.mismatch: must be at most 160 characters once filled (is 161)",
        ),
        (
            {"greeting": "Xin chao"},
            "templates.greeting: unknown key"
            " (known: bad_syntax, invalid_code, mismatch, rate_limited, reset_ok)",
        ),
    ],
)
def test_invalid_overrides_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Templates.from_mapping(overrides)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_the_source_prefixes_the_key() -> None:
    with pytest.raises(TemplateError) as info:
        Templates.from_mapping({"reset_ok": "{code}"}, source="smscd.toml: templates")
    assert str(info.value) == "smscd.toml: templates.reset_ok: must contain {password}"


def test_160_characters_once_filled() -> None:
    # {code} (6) becomes 10 characters and {password} (10) becomes 6.
    body = "Tai khoan {code} mat khau {password} "
    at_limit = body + "x" * (160 - len(body))
    templates = Templates.from_mapping({"reset_ok": at_limit})
    filled = templates.render(Outcome.RESET_OK, code="0123456789", password="123456")
    assert len(filled) == 160
    with pytest.raises(TemplateError) as info:
        Templates.from_mapping({"reset_ok": at_limit + "x"})
    assert str(info.value) == (
        "templates.reset_ok: must be at most 160 characters once filled (is 161)"
    )
    assert len(Templates.from_mapping({"mismatch": "y" * 160}).mismatch) == 160


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(TemplateError, match=r"^templates\.reset_ok: must contain \{code\}$"):
        Templates(reset_ok="Mat khau: {password}")
