"""The operator's config: every error names the file and the key; secrets never
leave the process."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest

from smscd.cli import main
from smscd.config import ConfigError, OutboxConfig, load_config, parse_config, render_effective
from smscd.link import BindKind
from smscd.reset import ChargingMode
from smscd.smpp import IdFormat

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


#: One row per bad value: a line for a valid file (it replaces the line of the
#: same key, or is appended after the ``[[smsc]]`` table, so that a bare key
#: lands in it) and the whole message after ``<file>: ``, naming the key once.
BAD_VALUES = [
    # [[smsc]]: integers (TOML true is a Python int, and must not pass as one)
    ("window = 0", "smsc[0].window: must be an integer between 1 and 1000 (got 0)"),
    ("window = 1001", "smsc[0].window: must be an integer between 1 and 1000 (got 1001)"),
    ("window = true", "smsc[0].window: must be an integer (got true)"),
    ("window = 'ten'", "smsc[0].window: must be an integer (got a string)"),
    ("window = 2.5", "smsc[0].window: must be an integer (got 2.5)"),
    ("port = 0", "smsc[0].port: must be an integer between 1 and 65535 (got 0)"),
    ("port = 99999", "smsc[0].port: must be an integer between 1 and 65535 (got 99999)"),
    ("port = false", "smsc[0].port: must be an integer (got false)"),
    (
        "port = 99999999999999999999",
        "smsc[0].port: must be an integer between 1 and 65535 (got 99999999999999999999)",
    ),
    ("source_ton = 7", "smsc[0].source_ton: must be an integer between 0 and 6 (got 7)"),
    ("source_npi = -1", "smsc[0].source_npi: must be an integer between 0 and 18 (got -1)"),
    (
        "max_unacked = 0",
        "smsc[0].max_unacked: must be an integer between 1 and 100000 (got 0)",
    ),
    # [[smsc]]: numbers of seconds or per second: finite, in range
    ("response_timeout = nan", "smsc[0].response_timeout: must be a finite number (got nan)"),
    ("response_timeout = inf", "smsc[0].response_timeout: must be a finite number (got inf)"),
    ("connect_timeout = -inf", "smsc[0].connect_timeout: must be a finite number (got -inf)"),
    ("throttle_pause = nan", "smsc[0].throttle_pause: must be a finite number (got nan)"),
    ("throughput = inf", "smsc[0].throughput: must be a finite number (got inf)"),
    ("throughput = -1", "smsc[0].throughput: must be a number between 0 and 10000 (got -1)"),
    (
        "throughput = 1e9",
        "smsc[0].throughput: must be a number between 0 and 10000 (got 1000000000.0)",
    ),
    ("throughput = true", "smsc[0].throughput: must be a number (got true)"),
    (
        "response_timeout = 0",
        "smsc[0].response_timeout: must be a number between 0.1 and 600 (got 0)",
    ),
    (
        "enquire_link_interval = 0.5",
        "smsc[0].enquire_link_interval: must be a number between 1 and 3600 (got 0.5)",
    ),
    (
        "enquire_link_interval = '30s'",
        "smsc[0].enquire_link_interval: must be a number (got a string)",
    ),
    ("backoff_max = 0.5", "smsc[0].backoff_max: must be >= backoff_initial (0.5 < 1)"),
    ("gsm7_default = 1", "smsc[0].gsm7_default: must be true or false (got 1)"),
    # [[smsc]]: hosts and texts
    (
        "host = 'no such host'",
        "smsc[0].host: must be an IPv4 address, an IPv6 address or a host name"
        " (got 'no such host')",
    ),
    (
        "host = '999.1.1.1'",
        "smsc[0].host: must be an IPv4 address, an IPv6 address or a host name (got '999.1.1.1')",
    ),
    (
        "host = '-smsc.example.vn'",
        "smsc[0].host: must be an IPv4 address, an IPv6 address or a host name"
        " (got '-smsc.example.vn')",
    ),
    (
        "host = '[::1'",
        "smsc[0].host: must be an IPv4 address, an IPv6 address or a host name (got '[::1')",
    ),
    ("host = 10", "smsc[0].host: must be a string (got 10)"),
    ("system_id = ''", "smsc[0].system_id: must not be empty"),
    ("system_id = 'v\u00e9'", "smsc[0].system_id: must be printable ASCII"),
    ('system_id = "a\\u0000b"', "smsc[0].system_id: must be printable ASCII"),
    ("system_type = 'thirteen-char'", "smsc[0].system_type: is longer than SMPP's 12 characters"),
    ("name = 'viettel one'", "smsc[0].name: must be a word of 1 to 64 letters, digits, - and _"),
    ("bind = 'both'", "smsc[0].bind: must be one of 'transceiver', 'transmitter+receiver'"),
    ("charging = 'sometimes'", "smsc[0].charging: must be one of 'mo', 'mt'"),
    ("message_id_format = 16", "smsc[0].message_id_format: must be a string (got 16)"),
    ("windwo = 5", "smsc[0].windwo: unknown key"),
    (
        "password = 'x'",
        "smsc[0].password_file: give only one of password, password_file, password_credential",
    ),
    # the other tables
    (
        "[service]\nshort_code = '\uff18\uff10\uff17\uff19'",
        "service.short_code: must be 1 to 20 digits",
    ),
    (
        "[database]\nurl = 'sqlite:::x'",
        "database.url: is not a database URL; use sqlite:///PATH, sqlite:// (in memory)"
        " or postgresql+psycopg://USER@HOST/DATABASE",
    ),
    (
        "[database]\nurl = 'sqlite://db.example/smscd.db'",
        "database.url: a SQLite URL names a file, not a host: use sqlite:///PATH (three slashes)",
    ),
    (
        "[database]\nurl = 'postgresql://smscd@db/smscd'",
        "database.url: must be a sqlite:// or postgresql+psycopg:// URL (got postgresql://)",
    ),
    (
        "[database]\nurl = 'postgresql+psycopg://smscd:pw@db:70000/smscd'",
        "database.url: port must be between 1 and 65535 (got 70000)",
    ),
    (
        "[database]\nurl = 'postgresql+psycopg://smscd:pw@db_1/smscd'",
        "database.url: host must be an IPv4 address, an IPv6 address or a host name (got 'db_1')",
    ),
    (
        "[database]\nretention_days = 7",
        "database.retention_days: must be an integer between 35 and 36500 (got 7)",
    ),
    ("[reset]\nrate_limit_per_day = true", "reset.rate_limit_per_day: must be a positive integer"),
    (
        "[reset]\nrate_limit_per_month = 1000000",
        "reset.rate_limit_per_month: must be at most 10000 (got 1000000)",
    ),
    (
        "[reset]\nduplicate_window = nan",
        "reset.duplicate_window: must be a number of seconds >= 0",
    ),
    (
        "[reset]\nhash_memory_kib = 100000000",
        "reset.hash_memory_kib: must be at most 1048576 (got 100000000)",
    ),
    ("[templates]\nmismatch = 5", "templates.mismatch: must be a string, not int"),
    (
        "[charge]\namount_vnd = -1",
        "charge.amount_vnd: must be an integer between 0 and 1000000 (got -1)",
    ),
    ("[charge]\namount_vnd = 1000.0", "charge.amount_vnd: must be an integer (got 1000.0)"),
    ("[log]\nlevel = 'verbose'", "log.level: must be one of 'debug', 'info', 'warning', 'error'"),
    (
        "[metrics]\nlisten = '127.0.0.1:99999'",
        "metrics.listen: port must be between 1 and 65535 (got 99999)",
    ),
    (
        "[metrics]\nlisten = '127.0.0.1:0'",
        "metrics.listen: port must be between 1 and 65535 (got 0)",
    ),
    (
        "[metrics]\nlisten = 'no such host:9108'",
        "metrics.listen: host must be an IPv4 address, a bracketed IPv6 address or a host name"
        " (got 'no such host')",
    ),
    (
        "[metrics]\nlisten = '999.1.1.1:9108'",
        "metrics.listen: host must be an IPv4 address, a bracketed IPv6 address or a host name"
        " (got '999.1.1.1')",
    ),
    (
        "[metrics]\nlisten = '::1:9108'",
        "metrics.listen: host must be an IPv4 address, a bracketed IPv6 address or a host name"
        " (got '::1')",
    ),
    ("[metrics]\nlisten = 'localhost'", "metrics.listen: must be HOST:PORT (or empty to disable)"),
    ("[metrics]\nlisten = 9108", "metrics.listen: must be a string (got 9108)"),
    ("[daemon]\nworkers = 1000", "daemon.workers: must be an integer between 0 and 256 (got 1000)"),
    (
        "[outbox]\nreply_expiry = 0",
        "outbox.reply_expiry: must be a number > 0 and <= 86400 (got 0)",
    ),
    (
        "[outbox]\nreply_expiry = 86401",
        "outbox.reply_expiry: must be a number > 0 and <= 86400 (got 86401)",
    ),
    ("[outbox]\nreply_expiry = nan", "outbox.reply_expiry: must be a finite number (got nan)"),
    ("[outbox]\nreply_expiry = '15m'", "outbox.reply_expiry: must be a number (got a string)"),
    (
        "[outbox]\nmax_attempts = 0",
        "outbox.max_attempts: must be an integer between 1 and 1000 (got 0)",
    ),
    ("[outbox]\nmax_attempts = true", "outbox.max_attempts: must be an integer (got true)"),
    (
        "[outbox]\nmax_attempts = 1001",
        "outbox.max_attempts: must be an integer between 1 and 1000 (got 1001)",
    ),
    ("[outbox]\nretries = 3", "outbox.retries: unknown key"),
    ("[outbox]\n[outbox.expiry]", "outbox.expiry: unknown key"),
    ("[smscs]", "smscs: unknown section"),
    ("outbox = 3", "smsc[0].outbox: unknown key"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_VALUES)
def test_a_bad_value_is_refused_naming_file_and_key_once(
    tmp_path: Path, extra: str, message: str
) -> None:
    key = extra.split(" =", 1)[0]
    kept = [line for line in SMSC.splitlines() if not line.startswith(f"{key} =")]
    path = write(tmp_path, "\n".join(kept) + "\n" + extra + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_a_section_that_is_not_a_table_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "outbox = 3\n" + SMSC)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: outbox: must be a table"


@pytest.mark.parametrize("body", ["", "[database]\nurl = 'sqlite://'\n", "smsc = []\n"])
def test_a_file_without_smsc_is_refused(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: smsc: at least one [[smsc]] table is required"


def test_an_error_in_the_second_smsc_names_it(tmp_path: Path) -> None:
    second = SMSC.replace('"viettel"', '"vinaphone"') + "window = -1\n"
    path = write(tmp_path, SMSC + second)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: smsc[1].window: must be an integer between 1 and 1000 (got -1)"
    )


@pytest.mark.parametrize(
    ("written", "host"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("smsc.viettel.vn", "smsc.viettel.vn"),
        ("smsc-1.example.vn.", "smsc-1.example.vn."),
        ("3com.example", "3com.example"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),  # connected to without its brackets
    ],
)
def test_valid_smsc_hosts(tmp_path: Path, written: str, host: str) -> None:
    path = write(tmp_path, SMSC.replace('"10.0.0.1"', f'"{written}"'))
    assert load_config(path).smscs[0].link.host == host


@pytest.mark.parametrize(
    ("written", "listen", "rendered"),
    [
        ("127.0.0.1:9108", "127.0.0.1:9108", "127.0.0.1:9108"),
        ("localhost:1", "localhost:1", "localhost:1"),
        ("[::1]:65535", "::1:65535", "[::1]:65535"),
        ("", None, ""),
    ],
)
def test_valid_metrics_listen(
    tmp_path: Path, written: str, listen: str | None, rendered: str
) -> None:
    config = load_config(write(tmp_path, SMSC + f'[metrics]\nlisten = "{written}"\n'))
    assert config.metrics_listen == listen  # the daemon splits it at the last colon
    assert f'\nlisten = "{rendered}"\n' in render_effective(config)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///var/smscd.db",
        "sqlite:////var/lib/smscd/smscd.db",
        "postgresql+psycopg://smscd:pw@db.example:5432/smscd",
        "postgresql+psycopg://smscd@[2001:db8::5]/smscd",
        "postgresql+psycopg:///smscd",
    ],
)
def test_valid_database_urls(tmp_path: Path, url: str) -> None:
    config = load_config(write(tmp_path, SMSC + f'[database]\nurl = "{url}"\n'))
    assert config.database_url == url


def test_outbox_defaults_and_values(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, SMSC)).outbox == OutboxConfig(
        reply_expiry=900.0, max_attempts=10
    )
    config = load_config(write(tmp_path, SMSC + "[outbox]\nreply_expiry = 60\nmax_attempts = 3\n"))
    assert config.outbox == OutboxConfig(reply_expiry=60.0, max_attempts=3)
    assert isinstance(config.outbox.reply_expiry, float)
    text = render_effective(config)
    assert "\n[outbox]\nreply_expiry = 60\nmax_attempts = 3\n" in text


def test_the_effective_config_reads_back_as_the_same_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        SMSC
        + """bind = "transmitter+receiver"
system_type = "VMA"
throughput = 12.5
response_timeout = 0.25
backoff_initial = 0.1
throttle_pause = 0
gsm7_default = false
message_id_format = "dec"
charging = "mt"
[reset]
duplicate_window = 30.5
hash_time_cost = 3
[templates]
mismatch = "Xin \\"loi\\"\\nthu lai"
[metrics]
listen = "[::1]:9200"
[outbox]
reply_expiry = 1.5
max_attempts = 1
""",
    )
    config = load_config(path)
    text = render_effective(config)
    assert 'password = "********"  # from file\n' in text
    assert "s3cr3t-b" not in text
    data = tomllib.loads(text)
    (smsc,) = data["smsc"]
    del smsc["password"]
    smsc["password_file"] = str(tmp_path / "pw")
    assert parse_config(data, source=str(path)) == config


def test_a_password_file_that_is_not_utf8_is_named_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, SMSC)
    (tmp_path / "pw").write_bytes(b"s3cr\xe9t\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: smsc[0].password_file: {tmp_path / 'pw'} is not UTF-8 text"


def test_a_password_that_is_not_printable_ascii_is_named_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, SMSC)
    (tmp_path / "pw").write_text("s3cr\u00e9t\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: smsc[0].password: must be printable ASCII (from file)"


def test_a_config_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, SMSC)
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not valid TOML: line 7 is not UTF-8 text"


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
