"""``check-config``'s output: the effective configuration as TOML, every key
with its value (defaults included), secrets masked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from smscd.reset import Templates
from smscd.store.sql import masked_url

if TYPE_CHECKING:
    from smscd.config._types import ApiConfig, Config

__all__ = ["render_effective"]


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
    if config.api is not None:
        lines += _api_lines(config.api)
    return "\n".join(lines) + "\n"


def _api_lines(api: ApiConfig) -> list[str]:
    lines = [
        "",
        "[api]",
        f"listen = {_toml_str(_listen_text(api.listen))}",
        *([f"cert = {_toml_str(api.cert)}"] if api.cert is not None else []),
        *([f"key = {_toml_str(api.key)}"] if api.key is not None else []),
        f"max_body = {api.max_body}",
        f"default_route = {_toml_str(api.default_route)}",
        "",
        "[api.routes]",
        *(f"{_toml_str(prefix)} = {_toml_str(carrier)}" for prefix, carrier in api.routes),
        "",
        "[api.templates]",
        *(f"{name} = {_toml_str(text)}" for name, text in api.templates),
    ]
    return lines


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
