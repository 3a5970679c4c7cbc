"""The configuration as values: frozen attrs classes, the error every problem
raises, and where the file is looked for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from smscd.reset import ChargingMode, ResetPolicy, Templates

if TYPE_CHECKING:
    from smscd.link import LinkConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "MAX_REPLY_EXPIRY",
    "ApiConfig",
    "Config",
    "ConfigError",
    "LogConfig",
    "OutboxConfig",
    "SmscConfig",
    "resolve_config_path",
]

DEFAULT_CONFIG_PATH = Path("conf/smscd.toml")

#: The longest a reply may wait for its SMSC (``[outbox] reply_expiry``): a day.
MAX_REPLY_EXPIRY = 86_400.0


class ConfigError(ValueError):
    """A configuration problem, with the file and key in its message."""


@attrs.frozen(kw_only=True)
class SmscConfig:
    """One ``[[smsc]]`` entry: a carrier bind and how it is billed."""

    link: LinkConfig
    charging: ChargingMode = ChargingMode.MO
    source_ton: int = 0
    source_npi: int = 0
    #: Where the password came from, for check-config ("file", "credential", "inline").
    credential_origin: str = "inline"

    @property
    def name(self) -> str:
        return self.link.name


@attrs.frozen(kw_only=True)
class LogConfig:
    #: "json", "console", or "auto" (console on a terminal, JSON otherwise).
    format: str = "auto"
    level: str = "info"


@attrs.frozen(kw_only=True)
class OutboxConfig:
    """The ``[outbox]`` table: how long and how often a reply is tried."""

    #: Seconds a password reply may wait for the SMSC to accept it; past that it
    #: is failed and its body masked.
    reply_expiry: float = 900.0
    #: submit_sm attempts before a reply is failed.
    max_attempts: int = 10


@attrs.frozen(kw_only=True)
class ApiConfig:
    """The ``[api]`` table: the internal HTTP API (off when the table is absent)."""

    #: ``HOST:PORT``, split at the last colon (an IPv6 host without brackets).
    listen: str = "127.0.0.1:8079"
    #: TLS certificate and key files (PEM); TLS when both are set.
    cert: str | None = None
    key: str | None = None
    #: The largest request body read, in bytes; a larger one gets 413.
    max_body: int = 16384
    #: ``[api.routes]``: number prefix (international form, ``8432``) ->
    #: carrier name, longest first. Number portability makes a prefix a guess.
    routes: tuple[tuple[str, str], ...] = ()
    #: The carrier of a number no prefix matches.
    default_route: str
    #: ``[api.templates]``: name -> text with ``{param}`` placeholders.
    templates: tuple[tuple[str, str], ...] = ()

    def route(self, msisdn: str) -> str:
        """The carrier for ``msisdn`` (international form): the longest
        matching prefix, else the default route."""
        for prefix, carrier in self.routes:
            if msisdn.startswith(prefix):
                return carrier
        return self.default_route

    def template(self, name: str) -> str | None:
        return dict(self.templates).get(name)


@attrs.frozen(kw_only=True)
class Config:
    source: str
    short_code: str = "8079"
    database_url: str = "sqlite:///var/smscd.db"
    retention_days: int = 400
    smscs: tuple[SmscConfig, ...] = ()
    reset: ResetPolicy = attrs.Factory(ResetPolicy)
    templates: Templates = attrs.Factory(Templates)
    charge_vnd: int = 1000
    log: LogConfig = attrs.Factory(LogConfig)
    #: ``HOST:PORT`` to serve metrics on, split at the last colon (an IPv6 host
    #: is kept without its brackets); None when disabled.
    metrics_listen: str | None = "127.0.0.1:9108"
    #: The bearer token of the status page and its JSON (``token_file`` or
    #: ``token_credential``); required when ``metrics_listen`` is not loopback.
    metrics_token: str | None = attrs.field(default=None, repr=False)
    #: Where the token came from ("file", "credential"), for check-config.
    metrics_token_origin: str | None = None
    #: MOs committed per transaction at most (group commit).
    intake_batch: int = 256
    #: Concurrent pipeline decisions (each may hash a password in a thread).
    workers: int = 0  # 0 = 16 per core (hashing is bounded separately, by the cores)
    outbox: OutboxConfig = attrs.Factory(OutboxConfig)
    #: The internal HTTP API; None: off.
    api: ApiConfig | None = None

    def smsc(self, name: str) -> SmscConfig:
        for smsc in self.smscs:
            if smsc.name == name:
                return smsc
        raise KeyError(name)


def resolve_config_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SMSCD_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH
