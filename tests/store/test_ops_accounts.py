from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from smscd.ops import accounts
from smscd.ops.accounts import import_csv, show
from smscd.reset import canonical_msisdn, mask_msisdn
from smscd.store.migrate import upgrade

if TYPE_CHECKING:
    from pathlib import Path

HEADER = "bhxh_code,phone,e_transaction\n"
GOOD = (
    HEADER
    + "0123456789,0327000686,1\n"
    + "0123456790,84912345678,false\n"
    + "0123456791,01627000687,Yes\n"  # pre-2018 Viettel number
    + "0123456792,+84 903 123 456,n\n"
    + "0123456789,0327000699,TRUE\n"  # the same code again: the last one wins
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _csv(tmp_path: Path, text: str, name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _import(db_url: str, path: Path, **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = import_csv(
        db_url,
        path,
        normalize_phone=canonical_msisdn,
        out=out,
        err=err,
        **kwargs,  # type: ignore[arg-type]
    )
    return code, out.getvalue(), err.getvalue()


def _accounts(db_url: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [
                (r[0], r[1], bool(r[2]), r[3])
                for r in conn.execute(
                    sa.text(
                        "SELECT bhxh_code, phone, e_transaction, password_hash "
                        "FROM accounts ORDER BY bhxh_code"
                    )
                )
            ]
    finally:
        engine.dispose()


@pytest.fixture
def migrated(db_url: str) -> str:
    upgrade(db_url)
    return db_url


def test_import_good_file(migrated: str, tmp_path: Path) -> None:
    code, out, err = _import(migrated, _csv(tmp_path, GOOD), batch_size=2)
    assert code == 0, err
    assert err == ""  # no progress bar when not on a terminal
    assert out.startswith("imported 5 accounts (0 bad rows skipped) in ")
    assert out.endswith(" rows/s)\n")
    assert _accounts(migrated) == [
        ("0123456789", "84327000699", True, None),
        ("0123456790", "84912345678", False, None),
        ("0123456791", "84327000687", True, None),
        ("0123456792", "84903123456", False, None),
    ]


def test_bad_rows_are_listed_and_nothing_is_imported(migrated: str, tmp_path: Path) -> None:
    text = (
        HEADER
        + "0123456789,0327000686,1\n"
        + "123,0327000686,1\n"  # line 3
        + "0123456790,12345,1\n"  # line 4
        + "0123456791,0327000686,maybe\n"  # line 5
        + "0123456792,0327000686\n"  # line 6
        + "0123456793,0327000686,0\n"
    )
    code, out, err = _import(migrated, _csv(tmp_path, text), batch_size=1)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "line 3: bhxh_code must be exactly 10 digits",
        "line 4: phone is not a valid Vietnamese mobile number",
        "line 5: e_transaction must be one of 1/0/true/false/yes/no/y/n",
        "line 6: expected 3 fields, found 2",
        "error: 4 bad rows; nothing imported (fix them, or use --skip-bad)",
    ]
    assert _accounts(migrated) == []


def test_skip_bad_imports_the_good_rows(migrated: str, tmp_path: Path) -> None:
    text = HEADER + "0123456789,0327000686,1\n" + "01234567890,0327000686,1\n"
    code, out, err = _import(migrated, _csv(tmp_path, text), skip_bad=True)
    assert code == 0
    assert err == "line 3: bhxh_code must be exactly 10 digits\n"
    assert out.startswith("imported 1 accounts (1 bad rows skipped) in ")
    assert _accounts(migrated) == [("0123456789", "84327000686", True, None)]


@pytest.mark.parametrize(
    "text",
    ["", "code,phone,e_transaction\n0123456789,0327000686,1\n", "bhxh_code;phone;e_transaction\n"],
)
def test_bad_header_is_refused(migrated: str, tmp_path: Path, text: str) -> None:
    code, _out, err = _import(migrated, _csv(tmp_path, text))
    assert code == 2
    assert "the header must be exactly 'bhxh_code,phone,e_transaction'" in err
    assert _accounts(migrated) == []


def test_missing_file_and_unmigrated_db(db_url: str, tmp_path: Path) -> None:
    code, _, err = _import(db_url, tmp_path / "nope.csv")
    assert (code, err.startswith("error: cannot read")) == (2, True)
    code, _, err = _import(db_url, _csv(tmp_path, GOOD))
    assert code == 2
    assert "is not migrated" in err


def test_upsert_keeps_the_password_hash(migrated: str, tmp_path: Path) -> None:
    _import(migrated, _csv(tmp_path, HEADER + "0123456789,0327000686,1\n"))
    engine = sa.create_engine(migrated)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE accounts SET password_hash = 'h', must_change = true"))
    finally:
        engine.dispose()
    code, _, _ = _import(migrated, _csv(tmp_path, HEADER + "0123456789,0912345678,0\n", "b.csv"))
    assert code == 0
    assert _accounts(migrated) == [("0123456789", "84912345678", False, "h")]


def test_progress_bar_only_when_asked_or_on_a_tty(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    path = _csv(tmp_path, GOOD)
    out, err = io.StringIO(), Tty()
    assert import_csv(migrated, path, normalize_phone=canonical_msisdn, out=out, err=err) == 0
    assert "rows/s" in err.getvalue()  # tqdm's rate
    monkeypatch.setenv("CI", "true")
    err = Tty()
    assert import_csv(migrated, path, normalize_phone=canonical_msisdn, out=out, err=err) == 0
    assert err.getvalue() == ""


def test_show(migrated: str, tmp_path: Path) -> None:
    _import(migrated, _csv(tmp_path, GOOD))
    out = io.StringIO()
    assert show(migrated, "0123456790", out, mask=mask_msisdn) == 0
    text = out.getvalue()
    assert text.splitlines()[:5] == [
        "bhxh_code:     0123456790",
        "phone:         0912xxx678",
        "e_transaction: no",
        "must_change:   no",
        "password_set:  no",
    ]
    assert "84912345678" not in text
    out = io.StringIO()
    assert show(migrated, "9999999999", out, mask=mask_msisdn) == 1
    assert out.getvalue() == "no account with code 9999999999\n"


def test_show_never_prints_the_hash(migrated: str, tmp_path: Path) -> None:
    _import(migrated, _csv(tmp_path, GOOD))
    engine = sa.create_engine(migrated)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE accounts SET password_hash = '$argon2id$secret', "
                    "password_changed_at = '2024-11-21 03:00:00.000000' "
                    "WHERE bhxh_code = '0123456789'"
                )
                if engine.dialect.name == "sqlite"
                else sa.text(
                    "UPDATE accounts SET password_hash = '$argon2id$secret', "
                    "password_changed_at = '2024-11-21 03:00:00+00' "
                    "WHERE bhxh_code = '0123456789'"
                )
            )
    finally:
        engine.dispose()
    out = io.StringIO()
    assert show(migrated, "0123456789", out, mask=mask_msisdn) == 0
    assert "argon2" not in out.getvalue()
    assert "password_set:  yes (set 2024-11-21T03:00:00+00:00)" in out.getvalue()


def _rows(first: int, count: int) -> bytes:
    return b"".join(b"%010d,0327000686,1\n" % i for i in range(first, first + count))


@pytest.mark.parametrize("skip_bad", [False, True])
def test_undecodable_file_is_unusable(migrated: str, tmp_path: Path, skip_bad: bool) -> None:
    path = tmp_path / "latin1.csv"
    good = _rows(0, 2000)  # lines 2-2001, past the read buffer
    path.write_bytes(HEADER.encode() + good + b"\xff\xfe,\xff,1\n")
    code, out, err = _import(migrated, path, skip_bad=skip_bad)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path}: line 2002: not UTF-8 text (byte 0xff at column 1); nothing imported\n"
    )
    assert _accounts(migrated) == []


@pytest.mark.parametrize("skip_bad", [False, True])
def test_a_bad_byte_on_line_502_of_600_is_named_there(
    migrated: str, tmp_path: Path, skip_bad: bool
) -> None:
    # Lines of 24 bytes: line 502 lies past the first 8 KiB the text layer
    # decodes at once, so the rows before it are read (line 10's bad row listed).
    path = tmp_path / "accounts.csv"
    path.write_bytes(
        HEADER.encode()
        + _rows(0, 8)  # lines 2-9
        + b"12345,0327000686,1\n"  # line 10: a bad row
        + _rows(9, 491)  # lines 11-501
        + b"0000000500,0327\xe900686,1\n"  # line 502: latin-1, not UTF-8
        + _rows(501, 98)  # lines 503-600
    )
    assert path.read_bytes().count(b"\n") == 600
    code, out, err = _import(migrated, path, skip_bad=skip_bad, batch_size=100)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "line 10: bhxh_code must be exactly 10 digits",
        f"error: {path}: line 502: not UTF-8 text (byte 0xe9 at column 16); nothing imported",
    ]
    assert _accounts(migrated) == []


@pytest.mark.parametrize("skip_bad", [False, True])
@pytest.mark.parametrize(
    "data",
    [
        b"0123456789,0327000686,1\n0123456790,0327\xff0686,1\n",
        b"0123456789,0327000686,1\r\n0123456790,0327\xff0686,1\r\n",
        b"0123456789,0327000686,1\n0123456790,0327000686,\xff\n",
    ],
)
def test_a_bad_byte_in_a_small_file_is_named_by_its_line(
    migrated: str, tmp_path: Path, skip_bad: bool, data: bytes
) -> None:
    # The whole file is one read of the text layer: it fails at the header.
    path = tmp_path / "accounts.csv"
    path.write_bytes(HEADER.encode() + data)
    code, out, err = _import(migrated, path, skip_bad=skip_bad)
    assert (code, out) == (2, "")
    column = data.split(b"\n")[1].index(b"\xff") + 1
    assert err == (
        f"error: {path}: line 3: not UTF-8 text (byte 0xff at column {column}); nothing imported\n"
    )
    assert _accounts(migrated) == []


def test_a_bad_byte_in_the_header_is_line_1(migrated: str, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(b"bhxh_code,ph\xf4ne,e_transaction\n0123456789,0327000686,1\n")
    code, out, err = _import(migrated, path)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path}: line 1: not UTF-8 text (byte 0xf4 at column 13); nothing imported\n"
    )


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_the_bad_byte_is_found_across_chunk_boundaries(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # A valid two-byte character, CR LF and bare CR line ends, each of which a
    # chunk may cut in two; the line count and column must not depend on where.
    monkeypatch.setattr(accounts, "_SCAN_CHUNK", chunk)
    path = tmp_path / "accounts.csv"
    path.write_bytes(
        "bhxh_code,phone,e_transaction\r\n"  # line 1
        "0123456789,0327000686,1\r\n"  # line 2
        "\u00e9\u00e9,0327000686,1\r"  # line 3 (bare CR)
        "0123456790,0327000686,1\r\n".encode()  # line 4
        + b"01\xc3\xa9\xff,0327000686,1\r\n"  # line 5: "01", a valid e-acute, then 0xff
    )
    code, _, err = _import(migrated, path)
    assert code == 2
    assert err.endswith(
        f"error: {path}: line 5: not UTF-8 text (byte 0xff at column 5); nothing imported\n"
    )
