"""The operator's config: every error names the file and the key; secrets never
leave the process."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from smscd.cli import main
from smscd.config import ConfigError, load_config
from smscd.link import BindKind
from smscd.smpp import IdFormat
from smscd.store import ChargingMode

SMSC = """
[[smsc]]
name = "viettel"
host = "10.0.0.1"
system_id = "vss"
password_file = "{pw}"
"""


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pw").write_text("s3cr3t-b\n")
    path = tmp_path / "smscd.toml"
    path.write_text(body.replace("{pw}", str(tmp_path / "pw")))
    return path


def test_defaults_follow_the_design(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SMSC))
    assert config.short_code == "8079"
    assert config.charge_vnd == 1000
    assert config.reset.rate_limit_per_day == 3
    assert config.reset.rate_limit_per_month == 10
    assert config.metrics_listen == "127.0.0.1:9108"
    (smsc,) = config.smscs
    assert smsc.link.password == "s3cr3t-b"
    assert smsc.link.port == 2775
    assert smsc.link.window == 10
    assert smsc.link.throughput == 50
    assert smsc.link.bind is BindKind.TRANSCEIVER
    assert smsc.link.message_id_format is IdFormat.AUTO
    assert smsc.charging is ChargingMode.MO


def test_every_option_is_read(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            SMSC
            + """bind = "transmitter+receiver"
window = 32
throughput = 100
charging = "mt"
message_id_format = "hex"
source_ton = 3
""",
        )
    )
    (smsc,) = config.smscs
    assert smsc.link.bind is BindKind.TRANSMITTER_RECEIVER
    assert (smsc.link.window, smsc.link.throughput) == (32, 100.0)
    assert smsc.charging is ChargingMode.MT
    assert smsc.link.message_id_format is IdFormat.HEX
    assert smsc.source_ton == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("window = 0\n", "smsc[0].window: must be between 1 and 1000 (got 0)"),
        ("window = 'ten'\n", "smsc[0].window: must be an integer"),
        ("bind = 'both'\n", "smsc[0].bind: must be one of 'transceiver', 'transmitter+receiver'"),
        ("charging = 'sometimes'\n", "smsc[0].charging: must be one of 'mo', 'mt'"),
        ("windwo = 5\n", "smsc[0].windwo: unknown key"),
        ("password = 'x'\n", "smsc[0].password_file: give only one of"),
    ],
)
def test_a_bad_line_names_its_file_and_key(tmp_path: Path, extra: str, message: str) -> None:
    path = write(tmp_path, SMSC + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_unreadable_password_file_and_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "smscd.toml"
    path.write_text(SMSC.replace("{pw}", str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match=r"smsc\[0\]\.password_file: cannot read"):
        load_config(path)
    path.write_text("[service\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_a_template_override_is_validated_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, SMSC + '\n[templates]\nmismatch = "Xin loi {password}"\n')
    with pytest.raises(ConfigError, match="mismatch"):
        load_config(path)


def test_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smsc-viettel").write_text("fromsysd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = tmp_path / "smscd.toml"
    path.write_text(
        SMSC.replace('password_file = "{pw}"\n', 'password_credential = "smsc-viettel"\n')
    )
    assert load_config(path).smscs[0].link.password == "fromsysd"


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        SMSC + '\n[database]\nurl = "postgresql+psycopg://smscd:dbpass@db/smscd"\n',
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["-c", str(path), "check-config"], out=out, err=err) == 0
    text = out.getvalue()
    assert "s3cr3t-b" not in text and "dbpass" not in text
    assert 'password = "********"  # from file' in text
    assert "postgresql+psycopg://smscd:***@db/smscd" in text
    assert "Cap lai mat khau thanh cong. Tai khoan: {code}/Mat khau: {password}" in text


def test_cli_bad_config_exits_2_with_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, SMSC + "window = -1\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["-c", str(path), "check-config"], out=out, err=err) == 2
    assert "smsc[0].window" in err.getvalue()


def test_shipped_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "conf" / "smscd.toml")
    assert [s.name for s in config.smscs] == ["simulator"]


def test_a_bind_password_over_the_smpp_limit_is_named_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, SMSC)
    (tmp_path / "pw").write_text("much-too-long-secret\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "smsc[0].password:" in str(info.value)
    assert "much-too-long-secret" not in str(info.value)
