"""The operator's TOML configuration, loaded into frozen attrs classes.

Every error names the file once and the key once (``conf/smscd.toml:
smsc[1].window: must be an integer between 1 and 1000 (got 0)``) so that an
operator can fix a bad line without reading code. ``check-config`` and ``run``
load the file through the same :func:`load_config`, so a file one accepts the
other accepts: every key is checked here for its type (a TOML ``true`` is not
an integer), its range, NaN and infinity, and every host, port and database
URL for its syntax (no DNS lookup, no connection).

Secrets (bind passwords) come from ``password_file`` or a systemd credential
(``password_credential``, read from ``$CREDENTIALS_DIRECTORY``); an inline
``password`` is accepted for development and flagged by ``check-config``. Nothing
here ever prints a secret: errors name the key, never its value, and
``render_effective()`` masks them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from smscd.link import BindKind, LinkConfig
from smscd.reset import ChargingMode, ResetPolicy, TemplateError, Templates
from smscd.smpp import IdFormat
from smscd.store.sql import masked_url

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "Config",
    "ConfigError",
    "LogConfig",
    "OutboxConfig",
    "SmscConfig",
    "load_config",
    "parse_config",
    "render_effective",
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


# --- values ----------------------------------------------------------------------


def _shown(value: object) -> str:
    """How a wrong value is named in an error: numbers as written, other types by
    their TOML kind (a string is not echoed: it may be a secret in the wrong key)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, dt.date | dt.time):
        return "a date or time"
    return type(value).__name__


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOTTED_DIGITS = re.compile(r"[0-9.]+")
_PORT = re.compile(r"[0-9]{1,5}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHORT_CODE = re.compile(r"[0-9]{1,20}")
_HOST_KINDS = "an IPv4 address, an IPv6 address or a host name"
_LISTEN_HOST_KINDS = "an IPv4 address, a bracketed IPv6 address or a host name"


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _normal_host(text: str, *, bare_ipv6: bool) -> str | None:
    """``text`` as a host to connect to or listen on (an IPv6 address without its
    brackets), or None when it is not an IPv4 address, an IPv6 address
    (bracketed, or bare when ``bare_ipv6``) or an RFC 1123 host name."""
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        return inner if _is_ipv6(inner) else None
    if ":" in text:
        return text if bare_ipv6 and _is_ipv6(text) else None
    if _DOTTED_DIGITS.fullmatch(text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            return None
        return text
    name = text.removesuffix(".")
    if not name or len(name) > 253:
        return None
    if all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return text
    return None


def _port(text: str) -> int | None:
    if not _PORT.fullmatch(text):
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


def _listen_address(text: str) -> tuple[str, int] | str:
    """(host, port) of a ``HOST:PORT`` listen address, or what is wrong with it."""
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            return "must be HOST:PORT (or empty to disable)"
        host_text, port_text = f"[{inner}]", rest[1:]
    else:
        host_text, colon, port_text = text.rpartition(":")
        if not colon or not host_text:
            return "must be HOST:PORT (or empty to disable)"
    host = _normal_host(host_text, bare_ipv6=False)
    if host is None:
        return f"host must be {_LISTEN_HOST_KINDS} (got {host_text!r})"
    port = _port(port_text)
    if port is None:
        shown = port_text if port_text.isdecimal() and port_text.isascii() else repr(port_text)
        return f"port must be between 1 and 65535 (got {shown})"
    return host, port


_URL_FORMS = "sqlite:///PATH, sqlite:// (in memory) or postgresql+psycopg://USER@HOST/DATABASE"


def _database_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as the store's URL, or None. The URL itself is
    never quoted: it may carry a password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return f"is not a database URL; use {_URL_FORMS}"
    driver = parsed.drivername
    if driver == "sqlite":
        if parsed.host or parsed.port is not None or parsed.username or parsed.password:
            return "a SQLite URL names a file, not a host: use sqlite:///PATH (three slashes)"
        return None
    if driver != "postgresql+psycopg":
        return f"must be a sqlite:// or postgresql+psycopg:// URL (got {driver}://)"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"port must be between 1 and 65535 (got {parsed.port})"
    hosts = parsed.host.split(",") if parsed.host else []
    for host in hosts:
        if _normal_host(host, bare_ipv6=True) is None:
            return f"host must be {_HOST_KINDS} (got {host!r})"
    return None


# --- tables ----------------------------------------------------------------------


class _Reader:
    """Reads one table, remembering which keys it consumed, so that an unknown
    key (a typo) is an error that names it."""

    def __init__(self, source: str, prefix: str, table: object) -> None:
        self.source = source
        self.prefix = prefix
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: {prefix}: must be a table")
        self.table: Mapping[str, Any] = table
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.prefix}.{key}: {message}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string (got {_shown(value)})")
        return value

    def opt_text(self, key: str) -> str | None:
        if key not in self.table:
            self.used.add(key)
            return None
        return self.text(key)

    def integer(self, key: str, default: int, *, minimum: int = 1, maximum: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer (got {_shown(value)})")
        if not minimum <= value <= maximum:
            raise self.error(
                key, f"must be an integer between {minimum} and {maximum} (got {value})"
            )
        return value

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float,
        maximum: float,
        exclusive_minimum: bool = False,
    ) -> float:
        """A finite int or float within the bounds, as a float."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number (got {_shown(value)})")
        if not math.isfinite(value):
            raise self.error(key, f"must be a finite number (got {_shown(value)})")
        low_ok = value > minimum if exclusive_minimum else value >= minimum
        if not low_ok or value > maximum:
            bounds = (
                f"> {_bound(minimum)} and <= {_bound(maximum)}"
                if exclusive_minimum
                else f"between {_bound(minimum)} and {_bound(maximum)}"
            )
            raise self.error(key, f"must be a number {bounds} (got {_shown(value)})")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false (got {_shown(value)})")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(repr(c) for c in choices)}")
        return value

    def host(self, key: str) -> str:
        text = self.text(key)
        host = _normal_host(text, bare_ipv6=True)
        if host is None:
            raise self.error(key, f"must be {_HOST_KINDS} (got {text!r})")
        return host

    def smpp_text(self, key: str, default: str | None = None, *, empty: bool = True) -> str:
        """A C-Octet String of SMPP: printable ASCII (the length is LinkConfig's)."""
        value = self.text(key, default)
        if not empty and not value:
            raise self.error(key, "must not be empty")
        if not _printable_ascii(value):
            raise self.error(key, "must be printable ASCII")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")

    def _get(self, key: str, default: object) -> object:
        self.used.add(key)
        if key in self.table:
            return self.table[key]
        if default is None:
            raise self.error(key, "is required")
        return default


def _printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _read_secret(reader: _Reader, name: str) -> tuple[str, str]:
    """The bind password and where it came from. No message names its value."""
    password, origin = _find_secret(reader, name)
    if not _printable_ascii(password):
        raise reader.error("password", f"must be printable ASCII (from {origin})")
    return password, origin


def _find_secret(reader: _Reader, name: str) -> tuple[str, str]:
    inline = reader.opt_text("password")
    path = reader.opt_text("password_file")
    credential = reader.opt_text("password_credential")
    given = [
        k
        for k, v in (
            ("password", inline),
            ("password_file", path),
            ("password_credential", credential),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise reader.error(
            given[1], "give only one of password, password_file, password_credential"
        )
    if inline is not None:
        return inline, "inline"
    if path is not None:
        return _read_secret_file(reader, "password_file", Path(path), path), "file"
    cred_name = credential if credential is not None else f"smsc-{name}"
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory is None:
        if credential is None:
            raise reader.error(
                "password_file", "is required (or password_credential under systemd)"
            )
        raise reader.error("password_credential", "CREDENTIALS_DIRECTORY is not set")
    secret = _read_secret_file(
        reader, "password_credential", Path(directory) / cred_name, f"credential {cred_name!r}"
    )
    return secret, "credential"


def _read_secret_file(reader: _Reader, key: str, path: Path, what: str) -> str:
    try:
        return path.read_bytes().decode("utf-8").strip()
    except OSError as exc:
        raise reader.error(key, f"cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise reader.error(key, f"{what} is not UTF-8 text") from exc


#: Shortest status page token accepted.
MIN_TOKEN_LENGTH = 16


def _is_loopback(host: str) -> bool:
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_metrics_token(reader: _Reader) -> tuple[str | None, str | None]:
    """``[metrics] token_file`` or ``token_credential``: the status page's
    bearer token and where it came from. No message names its value."""
    path = reader.opt_text("token_file")
    credential = reader.opt_text("token_credential")
    if path is not None and credential is not None:
        raise reader.error("token_credential", "give only one of token_file, token_credential")
    if path is not None:
        key, origin = "token_file", "file"
        token = _read_secret_file(reader, key, Path(path), path)
    elif credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if directory is None:
            raise reader.error("token_credential", "CREDENTIALS_DIRECTORY is not set")
        key, origin = "token_credential", "credential"
        token = _read_secret_file(
            reader, key, Path(directory) / credential, f"credential {credential!r}"
        )
    else:
        return None, None
    if not _printable_ascii(token) or " " in token:
        raise reader.error(key, f"the token must be printable ASCII without spaces (from {origin})")
    if len(token) < MIN_TOKEN_LENGTH:
        raise reader.error(
            key, f"the token must be at least {MIN_TOKEN_LENGTH} characters (from {origin})"
        )
    return token, origin


def _read_smsc(source: str, index: int, table: object) -> SmscConfig:
    r = _Reader(source, f"smsc[{index}]", table)
    name = r.text("name")
    if not _NAME.fullmatch(name):
        raise r.error("name", "must be a word of 1 to 64 letters, digits, - and _")
    password, credential_origin = _read_secret(r, name)
    bind = r.choice("bind", "transceiver", tuple(kind.value for kind in BindKind))
    id_format = r.choice("message_id_format", "auto", ("auto", "hex", "dec"))
    charging = r.choice("charging", "mo", ("mo", "mt"))
    link = _link_config(r, name, password, bind, id_format)
    smsc = SmscConfig(
        link=link,
        charging=ChargingMode(charging),
        source_ton=r.integer("source_ton", 0, minimum=0, maximum=6),
        source_npi=r.integer("source_npi", 0, minimum=0, maximum=18),
        credential_origin=credential_origin,
    )
    r.finish()
    return smsc


def _link_config(r: _Reader, name: str, password: str, bind: str, id_format: str) -> LinkConfig:
    backoff_initial = r.number("backoff_initial", 1.0, minimum=0.01, maximum=3600.0)
    backoff_max = r.number("backoff_max", 60.0, minimum=0.01, maximum=3600.0)
    if backoff_max < backoff_initial:
        raise r.error(
            "backoff_max", f"must be >= backoff_initial ({backoff_max:g} < {backoff_initial:g})"
        )
    fields: dict[str, Any] = {
        "name": name,
        "host": r.host("host"),
        "port": r.integer("port", 2775, maximum=65535),
        "system_id": r.smpp_text("system_id", empty=False),
        "password": password,
        "system_type": r.smpp_text("system_type", ""),
        "bind": BindKind(bind),
        "window": r.integer("window", 10, maximum=1000),
        "throughput": r.number("throughput", 50.0, minimum=0.0, maximum=10_000.0),
        "enquire_link_interval": r.number(
            "enquire_link_interval", 30.0, minimum=1.0, maximum=3600.0
        ),
        "response_timeout": r.number("response_timeout", 10.0, minimum=0.1, maximum=600.0),
        "connect_timeout": r.number("connect_timeout", 10.0, minimum=0.1, maximum=600.0),
        "backoff_initial": backoff_initial,
        "backoff_max": backoff_max,
        "throttle_pause": r.number("throttle_pause", 1.0, minimum=0.0, maximum=3600.0),
        "max_unacked": r.integer("max_unacked", 1000, maximum=100_000),
        "gsm7_default": r.flag("gsm7_default", True),
        "message_id_format": IdFormat[id_format.upper()],
    }
    try:
        return LinkConfig(**fields)
    except ValueError as exc:
        # LinkConfig's validators name the field first ("password is longer ...")
        # and never the value.
        field, _, reason = str(exc).partition(" ")
        raise r.error(field, reason) from exc


_SECTIONS = (
    "service",
    "database",
    "smsc",
    "reset",
    "templates",
    "charge",
    "log",
    "metrics",
    "daemon",
    "outbox",
)


def parse_config(data: Mapping[str, Any], *, source: str) -> Config:
    """The configuration in ``data`` (a parsed TOML document); ConfigError naming
    ``source`` and the key at the first problem."""
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"{source}: {key}: unknown section")

    service = _Reader(source, "service", data.get("service", {}))
    short_code = service.text("short_code", "8079")
    if not _SHORT_CODE.fullmatch(short_code):
        raise service.error("short_code", "must be 1 to 20 digits")
    service.finish()

    database = _Reader(source, "database", data.get("database", {}))
    url = database.text("url", "sqlite:///var/smscd.db")
    problem = _database_url_problem(url)
    if problem is not None:
        raise database.error("url", problem)
    retention = database.integer("retention_days", 400, minimum=35, maximum=36_500)
    database.finish()

    raw_smscs = data.get("smsc", [])
    if not isinstance(raw_smscs, list):
        raise ConfigError(f"{source}: smsc: must be an array of tables ([[smsc]])")
    if not raw_smscs:
        raise ConfigError(f"{source}: smsc: at least one [[smsc]] table is required")
    smscs = tuple(_read_smsc(source, i, t) for i, t in enumerate(raw_smscs))
    names = [s.name for s in smscs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{source}: smsc[{i}].name: duplicate name {name!r}")

    reset_table = data.get("reset", {})
    if not isinstance(reset_table, Mapping):
        raise ConfigError(f"{source}: reset: must be a table")
    try:
        policy = ResetPolicy.from_mapping(reset_table, source=f"{source}: reset")
    except ValueError as exc:
        raise ConfigError(_prefixed(source, str(exc))) from exc

    templates_table = data.get("templates", {})
    if not isinstance(templates_table, Mapping):
        raise ConfigError(f"{source}: templates: must be a table")
    try:
        templates = Templates.from_mapping(templates_table, source=f"{source}: templates")
    except TemplateError as exc:
        raise ConfigError(_prefixed(source, str(exc))) from exc

    charge = _Reader(source, "charge", data.get("charge", {}))
    amount = charge.integer("amount_vnd", 1000, minimum=0, maximum=1_000_000)
    charge.finish()

    log = _Reader(source, "log", data.get("log", {}))
    log_config = LogConfig(
        format=log.choice("format", "auto", ("auto", "json", "console")),
        level=log.choice("level", "info", ("debug", "info", "warning", "error")),
    )
    log.finish()

    metrics = _Reader(source, "metrics", data.get("metrics", {}))
    listen_text = metrics.text("listen", "127.0.0.1:9108")
    listen: str | None = None
    token, token_origin = _read_metrics_token(metrics)
    if listen_text:
        address = _listen_address(listen_text)
        if isinstance(address, str):
            raise metrics.error("listen", address)
        listen = f"{address[0]}:{address[1]}"
        if token is None and not _is_loopback(address[0]):
            raise metrics.error(
                "listen",
                f"{address[0]} is not a loopback address: the status page it serves"
                " needs a token (token_file or token_credential)",
            )
    metrics.finish()

    daemon = _Reader(source, "daemon", data.get("daemon", {}))
    intake_batch = daemon.integer("intake_batch", 256, maximum=10_000)
    workers = daemon.integer("workers", 0, minimum=0, maximum=256)
    daemon.finish()

    outbox = _Reader(source, "outbox", data.get("outbox", {}))
    outbox_config = OutboxConfig(
        reply_expiry=outbox.number(
            "reply_expiry", 900.0, minimum=0.0, maximum=MAX_REPLY_EXPIRY, exclusive_minimum=True
        ),
        max_attempts=outbox.integer("max_attempts", 10, maximum=1000),
    )
    outbox.finish()

    return Config(
        source=source,
        short_code=short_code,
        database_url=url,
        retention_days=retention,
        smscs=smscs,
        reset=policy,
        templates=templates,
        charge_vnd=amount,
        log=log_config,
        metrics_listen=listen,
        metrics_token=token,
        metrics_token_origin=token_origin,
        intake_batch=intake_batch,
        workers=workers,
        outbox=outbox_config,
    )


def _prefixed(source: str, message: str) -> str:
    return message if message.startswith(f"{source}: ") else f"{source}: {message}"


def load_config(path: Path) -> Config:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{source}: not valid TOML: line {line} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return parse_config(data, source=source)


# --- check-config ----------------------------------------------------------------


def render_effective(config: Config) -> str:
    """The effective configuration as TOML, secrets masked."""
    lines = [
        f"# effective configuration of {config.source}",
        "[service]",
        f"short_code = {_toml_str(config.short_code)}",
        "",
        "[database]",
        f"url = {_toml_str(masked_url(config.database_url))}",
        f"retention_days = {config.retention_days}",
        "",
    ]
    for smsc in config.smscs:
        link = smsc.link
        lines += [
            "[[smsc]]",
            f"name = {_toml_str(link.name)}",
            f"host = {_toml_str(link.host)}",
            f"port = {link.port}",
            f"system_id = {_toml_str(link.system_id)}",
            f'password = "********"  # from {smsc.credential_origin}',
            f"system_type = {_toml_str(link.system_type)}",
            f"bind = {_toml_str(link.bind.value)}",
            f"window = {link.window}",
            f"throughput = {_toml_float(link.throughput)}",
            f"enquire_link_interval = {_toml_float(link.enquire_link_interval)}",
            f"response_timeout = {_toml_float(link.response_timeout)}",
            f"connect_timeout = {_toml_float(link.connect_timeout)}",
            f"backoff_initial = {_toml_float(link.backoff_initial)}",
            f"backoff_max = {_toml_float(link.backoff_max)}",
            f"throttle_pause = {_toml_float(link.throttle_pause)}",
            f"max_unacked = {link.max_unacked}",
            f"gsm7_default = {'true' if link.gsm7_default else 'false'}",
            f"charging = {_toml_str(smsc.charging.value)}",
            f"message_id_format = {_toml_str(link.message_id_format.name.lower())}",
            f"source_ton = {smsc.source_ton}",
            f"source_npi = {smsc.source_npi}",
            "",
        ]
    policy = config.reset
    lines += [
        "[reset]",
        f"rate_limit_per_day = {policy.rate_limit_per_day}",
        f"rate_limit_per_month = {policy.rate_limit_per_month}",
        f"duplicate_window = {_toml_float(policy.duplicate_window)}",
        f"hash_memory_kib = {policy.hash.memory_kib}",
        f"hash_time_cost = {policy.hash.time_cost}",
        f"hash_parallelism = {policy.hash.parallelism}",
        "",
        "[templates]",
    ]
    for field in attrs.fields(Templates):
        value = getattr(config.templates, field.name)
        lines.append(f"{field.name} = {_toml_str(value)}")
    lines += [
        "",
        "[charge]",
        f"amount_vnd = {config.charge_vnd}",
        "",
        "[log]",
        f"format = {_toml_str(config.log.format)}",
        f"level = {_toml_str(config.log.level)}",
        "",
        "[metrics]",
        f"listen = {_toml_str(_listen_text(config.metrics_listen))}",
        *(
            [f"# token = ******** (from {config.metrics_token_origin})"]
            if config.metrics_token is not None
            else []
        ),
        "",
        "[daemon]",
        f"intake_batch = {config.intake_batch}",
        f"workers = {config.workers}",
        "",
        "[outbox]",
        f"reply_expiry = {_toml_float(config.outbox.reply_expiry)}",
        f"max_attempts = {config.outbox.max_attempts}",
    ]
    return "\n".join(lines) + "\n"


def _listen_text(listen: str | None) -> str:
    if listen is None:
        return ""
    host, _, port = listen.rpartition(":")
    return f"[{host}]:{port}" if ":" in host else listen


def _toml_float(value: float) -> str:
    """``value`` as TOML that reads back as the same number (``50``, ``0.25``)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _toml_str(value: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
