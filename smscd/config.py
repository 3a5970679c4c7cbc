"""The operator's TOML configuration, loaded into frozen attrs classes.

Every error names the file and the key (``conf/smscd.toml: smsc[1].window: must be
a positive integer``) so that an operator can fix a bad line without reading code.
Secrets (bind passwords) come from ``password_file`` or a systemd credential
(``password_credential``, read from ``$CREDENTIALS_DIRECTORY``); an inline
``password`` is accepted for development and flagged by ``check-config``. Nothing
here ever prints a secret: ``render_effective()`` masks them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from smscd.link import BindKind, LinkConfig
from smscd.reset import ResetPolicy, TemplateError, Templates
from smscd.smpp import IdFormat
from smscd.store import ChargingMode
from smscd.store.sql import masked_url

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "Config",
    "ConfigError",
    "LogConfig",
    "SmscConfig",
    "load_config",
    "render_effective",
    "resolve_config_path",
]

DEFAULT_CONFIG_PATH = Path("conf/smscd.toml")


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
    metrics_listen: str | None = "127.0.0.1:9108"
    #: MOs committed per transaction at most (group commit).
    intake_batch: int = 256
    #: Concurrent pipeline decisions (each may hash a password in a thread).
    workers: int = 0  # 0 = 16 per core (hashing is bounded separately, by the cores)

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


# --- helpers ---------------------------------------------------------------------


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
            raise self.error(key, "must be a string")
        return value

    def opt_text(self, key: str) -> str | None:
        if key not in self.table:
            return None
        return self.text(key)

    def integer(
        self, key: str, default: int, *, minimum: int = 1, maximum: int | None = None
    ) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.error(key, f"must be {bound} (got {value})")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum} (got {value})")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(repr(c) for c in choices)}")
        return value

    def raw(self) -> dict[str, Any]:
        self.used.update(self.table)
        return dict(self.table)

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


def _read_secret(reader: _Reader, name: str) -> tuple[str, str]:
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
        try:
            return Path(path).read_text(encoding="utf-8").strip(), "file"
        except OSError as exc:
            raise reader.error("password_file", f"cannot read {path}: {exc.strerror}") from exc
    cred_name = credential if credential is not None else f"smsc-{name}"
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory is None:
        if credential is None:
            raise reader.error(
                "password_file", "is required (or password_credential under systemd)"
            )
        raise reader.error("password_credential", "CREDENTIALS_DIRECTORY is not set")
    try:
        return (Path(directory) / cred_name).read_text(encoding="utf-8").strip(), "credential"
    except OSError as exc:
        raise reader.error(
            "password_credential", f"cannot read credential {cred_name!r}: {exc.strerror}"
        ) from exc


def _read_smsc(source: str, index: int, table: object) -> SmscConfig:
    r = _Reader(source, f"smsc[{index}]", table)
    name = r.text("name")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise r.error("name", "must be a non-empty word (letters, digits, - and _)")
    password, credential_origin = _read_secret(r, name)
    bind = r.choice("bind", "transceiver", tuple(kind.value for kind in BindKind))
    id_format = r.choice("message_id_format", "auto", ("auto", "hex", "dec"))
    charging = r.choice("charging", "mo", ("mo", "mt"))
    try:
        link = _link_config(r, name, password, bind, id_format)
    except ValueError as exc:
        # LinkConfig's validators name the field first ("password is longer ...").
        field, _, reason = str(exc).partition(" ")
        raise r.error(field, reason) from exc
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
    return LinkConfig(
        name=name,
        host=r.text("host"),
        port=r.integer("port", 2775, maximum=65535),
        system_id=r.text("system_id"),
        password=password,
        system_type=r.text("system_type", ""),
        bind=BindKind(bind),
        window=r.integer("window", 10, maximum=1000),
        throughput=r.number("throughput", 50.0),
        enquire_link_interval=r.number("enquire_link_interval", 30.0, minimum=1.0),
        response_timeout=r.number("response_timeout", 10.0, minimum=0.1),
        connect_timeout=r.number("connect_timeout", 10.0, minimum=0.1),
        backoff_initial=r.number("backoff_initial", 1.0, minimum=0.01),
        backoff_max=r.number("backoff_max", 60.0, minimum=0.01),
        throttle_pause=r.number("throttle_pause", 1.0, minimum=0.0),
        gsm7_default=r.flag("gsm7_default", True),
        message_id_format=IdFormat[id_format.upper()],
    )


def parse_config(data: Mapping[str, Any], *, source: str) -> Config:
    known = {
        "service",
        "database",
        "smsc",
        "reset",
        "templates",
        "charge",
        "log",
        "metrics",
        "daemon",
    }
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: {key}: unknown section")

    service = _Reader(source, "service", data.get("service", {}))
    short_code = service.text("short_code", "8079")
    if not short_code.isdigit():
        raise service.error("short_code", "must be digits")
    service.finish()

    database = _Reader(source, "database", data.get("database", {}))
    url = database.text("url", "sqlite:///var/smscd.db")
    if not url.startswith(("sqlite:", "postgresql")):
        raise database.error("url", "must be a sqlite:/// or postgresql+psycopg:// URL")
    retention = database.integer("retention_days", 400, minimum=35)
    database.finish()

    raw_smscs = data.get("smsc", [])
    if not isinstance(raw_smscs, list):
        raise ConfigError(f"{source}: smsc: must be an array of tables ([[smsc]])")
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
    amount = charge.integer("amount_vnd", 1000, minimum=0)
    charge.finish()

    log = _Reader(source, "log", data.get("log", {}))
    log_config = LogConfig(
        format=log.choice("format", "auto", ("auto", "json", "console")),
        level=log.choice("level", "info", ("debug", "info", "warning", "error")),
    )
    log.finish()

    metrics = _Reader(source, "metrics", data.get("metrics", {}))
    listen = metrics.text("listen", "127.0.0.1:9108")
    if listen and (":" not in listen or not listen.rsplit(":", 1)[1].isdigit()):
        raise metrics.error("listen", "must be HOST:PORT (or empty to disable)")
    metrics.finish()

    daemon = _Reader(source, "daemon", data.get("daemon", {}))
    intake_batch = daemon.integer("intake_batch", 256, maximum=10_000)
    workers = daemon.integer("workers", 0, minimum=0, maximum=256)
    daemon.finish()

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
        metrics_listen=listen or None,
        intake_batch=intake_batch,
        workers=workers,
    )


def _prefixed(source: str, message: str) -> str:
    return message if message.startswith(source) else f"{source}: {message}"


def load_config(path: Path) -> Config:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return parse_config(data, source=source)


def render_effective(config: Config) -> str:
    """The effective configuration as TOML, secrets masked."""
    lines = [
        f"# effective configuration of {config.source}",
        "[service]",
        f'short_code = "{config.short_code}"',
        "",
        "[database]",
        f'url = "{masked_url(config.database_url)}"',
        f"retention_days = {config.retention_days}",
        "",
    ]
    for smsc in config.smscs:
        link = smsc.link
        lines += [
            "[[smsc]]",
            f'name = "{link.name}"',
            f'host = "{link.host}"',
            f"port = {link.port}",
            f'system_id = "{link.system_id}"',
            f'password = "********"  # from {smsc.credential_origin}',
            f'system_type = "{link.system_type}"',
            f'bind = "{link.bind.value}"',
            f"window = {link.window}",
            f"throughput = {link.throughput:g}",
            f"enquire_link_interval = {link.enquire_link_interval:g}",
            f"response_timeout = {link.response_timeout:g}",
            f'charging = "{smsc.charging.value}"',
            f'message_id_format = "{link.message_id_format.name.lower()}"',
            f"source_ton = {smsc.source_ton}",
            f"source_npi = {smsc.source_npi}",
            "",
        ]
    policy = config.reset
    lines += [
        "[reset]",
        f"rate_limit_per_day = {policy.rate_limit_per_day}",
        f"rate_limit_per_month = {policy.rate_limit_per_month}",
        f"duplicate_window = {policy.duplicate_window:g}",
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
        f'format = "{config.log.format}"',
        f'level = "{config.log.level}"',
        "",
        "[metrics]",
        f'listen = "{config.metrics_listen or ""}"',
        "",
        "[daemon]",
        f"intake_batch = {config.intake_batch}",
        f"workers = {config.workers}",
    ]
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
