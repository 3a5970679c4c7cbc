"""``[metrics]`` keys of the status page: the token, and the rule that a
listener off loopback needs one (``run`` and ``check-config`` refuse it)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest

from smscd.cli import main
from smscd.config import ConfigError, load_config, render_effective

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "k7Qz-9vLr-2mWx-8sTb"
SMSC = """
[[smsc]]
name = "viettel"
host = "10.0.0.1"
system_id = "vss"
password_file = "{dir}/pw"

[metrics]
"""


def write(tmp_path: Path, metrics: str) -> Path:
    (tmp_path / "pw").write_text("s3cr3t-b\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = tmp_path / "smscd.toml"
    path.write_text((SMSC + metrics).replace("{dir}", str(tmp_path)))
    return path


def test_loopback_needs_no_token(tmp_path: Path) -> None:
    for listen in ("127.0.0.1:9108", "localhost:9108", "[::1]:9108", "127.0.0.2:1"):
        config = load_config(write(tmp_path, f'listen = "{listen}"\n'))
        assert config.metrics_token is None


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:9108", "10.1.2.3:9108", "[::]:9108", "ops.example:9108"]
)
def test_a_listener_off_loopback_without_a_token_is_refused(tmp_path: Path, listen: str) -> None:
    path = write(tmp_path, f'listen = "{listen}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: metrics.listen: ")
    assert message.endswith(
        "is not a loopback address: the status page it serves needs a token"
        " (token_file or token_credential)"
    )
    err = io.StringIO()
    for command in ("check-config", "run"):
        assert main(["-c", str(path), command], out=io.StringIO(), err=err) == 2
    assert err.getvalue().count("metrics.listen") == 2


def test_a_token_file_opens_any_listener_and_is_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, f'listen = "0.0.0.0:9108"\ntoken_file = "{tmp_path}/token"\n')
    config = load_config(path)
    assert (config.metrics_token, config.metrics_token_origin) == (TOKEN, "file")
    assert TOKEN not in repr(config)
    text = render_effective(config)
    assert TOKEN not in text
    assert '\nlisten = "0.0.0.0:9108"\n# token = ******** (from file)\n' in text
    out = io.StringIO()
    assert main(["-c", str(path), "check-config"], out=out, err=io.StringIO()) == 0
    assert TOKEN not in out.getvalue()


def test_a_token_from_a_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'listen = "10.1.2.3:9108"\ntoken_credential = "token"\n')
    with pytest.raises(ConfigError, match=r"metrics\.token_credential: CREDENTIALS_DIRECTORY"):
        load_config(path)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(path)
    assert (config.metrics_token, config.metrics_token_origin) == (TOKEN, "credential")


@pytest.mark.parametrize(
    ("metrics", "token", "error"),
    [
        (
            'token_file = "{dir}/token"\ntoken_credential = "t"\n',
            TOKEN,
            "metrics.token_credential: give only one of token_file, token_credential",
        ),
        (
            'token_file = "{dir}/token"\n',
            "short-token",
            "metrics.token_file: the token must be at least 16 characters (from file)",
        ),
        (
            'token_file = "{dir}/token"\n',
            "a token with spaces in it",
            "metrics.token_file: the token must be printable ASCII without spaces (from file)",
        ),
        (
            'token_file = "{dir}/missing"\n',
            TOKEN,
            "metrics.token_file: cannot read {dir}/missing: No such file or directory",
        ),
    ],
)
def test_a_bad_token_is_named_not_echoed(
    tmp_path: Path, metrics: str, token: str, error: str
) -> None:
    path = write(tmp_path, metrics)
    (tmp_path / "token").write_text(token + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: " + error.replace("{dir}", str(tmp_path))
    assert token not in str(info.value)
