"""The whole file: :func:`load_config` reads and decodes it, and
:func:`parse_config` reads each section in turn, stopping at the first
problem."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smscd.config._api import read_api
from smscd.config._read import Reader, database_url_problem, is_loopback, listen_address
from smscd.config._secrets import read_metrics_token
from smscd.config._smsc import read_smsc
from smscd.config._types import MAX_REPLY_EXPIRY, Config, ConfigError, LogConfig, OutboxConfig
from smscd.reset import ResetPolicy, TemplateError, Templates

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_config", "parse_config"]

_SHORT_CODE = re.compile(r"[0-9]{1,20}")

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
    "api",
)


def parse_config(data: Mapping[str, Any], *, source: str) -> Config:
    """The configuration in ``data`` (a parsed TOML document); ConfigError naming
    ``source`` and the key at the first problem."""
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"{source}: {key}: unknown section")

    service = Reader(source, "service", data.get("service", {}))
    short_code = service.text("short_code", "8079")
    if not _SHORT_CODE.fullmatch(short_code):
        raise service.error("short_code", "must be 1 to 20 digits")
    service.finish()

    database = Reader(source, "database", data.get("database", {}))
    url = database.text("url", "sqlite:///var/smscd.db")
    problem = database_url_problem(url)
    if problem is not None:
        raise database.error("url", problem)
    retention = database.integer("retention_days", 400, minimum=35, maximum=36_500)
    database.finish()

    raw_smscs = data.get("smsc", [])
    if not isinstance(raw_smscs, list):
        raise ConfigError(f"{source}: smsc: must be an array of tables ([[smsc]])")
    if not raw_smscs:
        raise ConfigError(f"{source}: smsc: at least one [[smsc]] table is required")
    smscs = tuple(read_smsc(source, i, t) for i, t in enumerate(raw_smscs))
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

    charge = Reader(source, "charge", data.get("charge", {}))
    amount = charge.integer("amount_vnd", 1000, minimum=0, maximum=1_000_000)
    charge.finish()

    log = Reader(source, "log", data.get("log", {}))
    log_config = LogConfig(
        format=log.choice("format", "auto", ("auto", "json", "console")),
        level=log.choice("level", "info", ("debug", "info", "warning", "error")),
    )
    log.finish()

    metrics = Reader(source, "metrics", data.get("metrics", {}))
    listen_text = metrics.text("listen", "127.0.0.1:9108")
    listen: str | None = None
    token, token_origin = read_metrics_token(metrics)
    if listen_text:
        address = listen_address(listen_text)
        if isinstance(address, str):
            raise metrics.error("listen", address)
        listen = f"{address[0]}:{address[1]}"
        if token is None and not is_loopback(address[0]):
            raise metrics.error(
                "listen",
                f"{address[0]} is not a loopback address: the status page it serves"
                " needs a token (token_file or token_credential)",
            )
    metrics.finish()

    daemon = Reader(source, "daemon", data.get("daemon", {}))
    intake_batch = daemon.integer("intake_batch", 256, maximum=10_000)
    workers = daemon.integer("workers", 0, minimum=0, maximum=256)
    daemon.finish()

    outbox = Reader(source, "outbox", data.get("outbox", {}))
    outbox_config = OutboxConfig(
        reply_expiry=outbox.number(
            "reply_expiry", 900.0, minimum=0.0, maximum=MAX_REPLY_EXPIRY, exclusive_minimum=True
        ),
        max_attempts=outbox.integer("max_attempts", 10, maximum=1000),
    )
    outbox.finish()

    api = read_api(source, data["api"], names) if "api" in data else None

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
        api=api,
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
