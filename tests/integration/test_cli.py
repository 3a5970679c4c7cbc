"""The operator's command line, in-process: exit codes, stdout vs stderr, and the
refusal of an unmigrated database."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest

from smscd.cli import main
from smscd.store.migrate import head_revision

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "pw").write_text("secret\n")
    path = tmp_path / "smscd.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "smscd.db"}"

[[smsc]]
name = "sim"
host = "127.0.0.1"
system_id = "smscd"
password_file = "{tmp_path / "pw"}"
"""
    )
    return path


def smscd(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        ["accounts", "show", "0123456789"],
        ["report", "charges"],
        ["report", "receipts", "--format", "csv"],
        ["db", "prune"],
    ],
)
def test_every_command_refuses_an_unmigrated_database(config: Path, command: list[str]) -> None:
    code, out, err = smscd("-c", str(config), *command)
    assert code == 2
    assert out == ""
    assert f'is not migrated (at empty, need {head_revision()}): run "smscd db upgrade"' in err


def test_upgrade_import_show_report(config: Path, tmp_path: Path) -> None:
    code, out, _ = smscd("-c", str(config), "db", "upgrade")
    assert (code, f"migrated from empty to {head_revision()}" in out) == (0, True)
    csv = tmp_path / "accounts.csv"
    csv.write_text("bhxh_code,phone,e_transaction\n0123456789,01627000686,1\n12345,0327000686,1\n")
    code, _, err = smscd("-c", str(config), "accounts", "import", str(csv))
    assert code == 1
    assert "line 3: " in err
    code, out, _ = smscd("-c", str(config), "accounts", "import", str(csv), "--skip-bad")
    assert code == 0
    assert out.startswith("imported 1 accounts (1 bad rows skipped)")
    code, out, _ = smscd("-c", str(config), "accounts", "show", "0123456789")
    assert code == 0
    assert "phone:         0327xxx686\n" in out  # stored in its post-2018 form, masked
    code, out, err = smscd("-c", str(config), "accounts", "show", "9999999999")
    assert (code, out, err) == (1, "", "no account with code 9999999999\n")
    code, out, err = smscd(
        "-c", str(config), "report", "charges", "--from", "2026-02-02", "--to", "2026-02-01"
    )
    assert (code, out) == (2, "")
    assert err == "error: --from 2026-02-02 is after --to 2026-02-01\n"
    code, out, _ = smscd("-c", str(config), "report", "charges", "--format", "csv")
    assert code == 0
    assert out.splitlines()[0].startswith("date,carrier,")


def test_bad_arguments_exit_2(config: Path) -> None:
    with pytest.raises(SystemExit) as info:
        smscd("-c", str(config), "report", "charges", "--from", "yesterday")
    assert info.value.code == 2


SMSC = """
[[smsc]]
name = "sim"
host = "127.0.0.1"
system_id = "smscd"
password = "secret"
"""


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[log]\nlevel = 'info'\n", "smsc: at least one [[smsc]] table is required"),
        (
            SMSC + "response_timeout = nan\n",
            "smsc[0].response_timeout: must be a finite number (got nan)",
        ),
        (
            SMSC + "[metrics]\nlisten = '127.0.0.1:99999'\n",
            "metrics.listen: port must be between 1 and 65535 (got 99999)",
        ),
        (
            SMSC + "[database]\nurl = 'sqlite:::x'\n",
            "database.url: is not a database URL; use sqlite:///PATH, sqlite:// (in memory)"
            " or postgresql+psycopg://USER@HOST/DATABASE",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_check_config_and_run_refuse_a_bad_file_alike(
    tmp_path: Path, body: str, problem: str, command: str
) -> None:
    path = tmp_path / "smscd.toml"
    path.write_text(body)
    code, out, err = smscd("-c", str(path), command)
    assert (code, out) == (2, "")
    assert err == f"smscd: {path}: {problem}\n"
