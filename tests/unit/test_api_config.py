"""The ``[api]`` table: off when absent, loopback by default, the longest
route prefix wins, and every bad key is an error naming the file and key."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING

import pytest

from smscd.config import ConfigError, parse_config, render_effective

if TYPE_CHECKING:
    from smscd.config import Config

SMSCS = """
[[smsc]]
name = "viettel"
host = "10.0.0.1"
system_id = "vss"
password = "pw"

[[smsc]]
name = "vinaphone"
host = "10.0.0.2"
system_id = "vss"
password = "pw"
"""


def parse(api: str, smscs: str = SMSCS) -> Config:
    return parse_config(tomllib.loads(smscs + api), source="smscd.toml")


def test_the_api_is_off_without_its_table() -> None:
    assert parse("").api is None


def test_defaults_and_routes() -> None:
    config = parse(
        """
[api]
default_route = "viettel"

[api.routes]
"8491" = "vinaphone"
"849123" = "viettel"
"088" = "vinaphone"

[api.templates]
otp = "Ma OTP VssID cua ban la {otp}"
"""
    )
    api = config.api
    assert api is not None
    assert (api.listen, api.max_body, api.cert, api.key) == ("127.0.0.1:8079", 16384, None, None)
    assert api.route("84912345678") == "viettel"  # the longest prefix wins
    assert api.route("84911111111") == "vinaphone"
    assert api.route("84881111111") == "vinaphone"  # "088" is the national form of 8488
    assert api.route("84327000686") == "viettel"  # the default route
    assert api.template("otp") == "Ma OTP VssID cua ban la {otp}"
    rendered = render_effective(config)
    assert '[api]\nlisten = "127.0.0.1:8079"\nmax_body = 16384\ndefault_route = "viettel"' in (
        rendered
    )
    assert parse_config(tomllib.loads(rendered), source="again").api == api


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ("[api]\n", "smscd.toml: api.default_route: is required"),
        (
            '[api]\ndefault_route = "mobifone"\n',
            "smscd.toml: api.default_route: no [[smsc]] is named 'mobifone'",
        ),
        ('[api]\ndefault_route = "viettel"\nlisten = "nowhere"\n', "smscd.toml: api.listen:"),
        (
            '[api]\ndefault_route = "viettel"\ncert = "c.pem"\n',
            "smscd.toml: api.key: cert and key go together",
        ),
        (
            '[api]\ndefault_route = "viettel"\nmax_body = 10\n',
            "smscd.toml: api.max_body: must be an integer between 256 and 1048576 (got 10)",
        ),
        ('[api]\ndefault_route = "viettel"\nport = 1\n', "smscd.toml: api.port: unknown key"),
        (
            '[api]\ndefault_route = "viettel"\n[api.routes]\n"84x" = "viettel"\n',
            "smscd.toml: api.routes.84x: a prefix must be 1 to 15 digits",
        ),
        (
            '[api]\ndefault_route = "viettel"\n[api.routes]\n"8432" = "gmobile"\n',
            "smscd.toml: api.routes.8432: must name an [[smsc]] (got 'gmobile')",
        ),
        (
            '[api]\ndefault_route = "viettel"\n[api.templates]\notp = "code {0}"\n',
            "smscd.toml: api.templates.otp: placeholder {0} must be a plain lowercase name",
        ),
        (
            '[api]\ndefault_route = "viettel"\n[api.templates]\notp = "code {otp"\n',
            "smscd.toml: api.templates.otp: is not a valid template",
        ),
    ],
)
def test_errors_name_the_key(api: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(api)
    assert str(info.value).startswith(message)


def test_an_smsc_may_not_be_named_api() -> None:
    with pytest.raises(ConfigError, match=r"smsc\[0\]\.name: 'api' is reserved"):
        parse("", SMSCS.replace('"viettel"', '"api"'))
