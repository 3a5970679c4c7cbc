"""Reading one TOML table: :class:`Reader` checks each key for its type (a TOML
``true`` is not an integer), its range, NaN and infinity, and remembers which
keys it consumed so that an unknown key (a typo) is an error naming it; the
functions above it check the syntax of hosts, ports, listen addresses and
database URLs (no DNS lookup, no connection).

Errors name the key and never a string value: it may be a secret in the wrong
key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from smscd.config._types import ConfigError

__all__ = [
    "Reader",
    "database_url_problem",
    "is_loopback",
    "listen_address",
    "printable_ascii",
]

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


def printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable()


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOTTED_DIGITS = re.compile(r"[0-9.]+")
_PORT = re.compile(r"[0-9]{1,5}")
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


def listen_address(text: str) -> tuple[str, int] | str:
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


def is_loopback(host: str) -> bool:
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_URL_FORMS = "sqlite:///PATH, sqlite:// (in memory) or postgresql+psycopg://USER@HOST/DATABASE"


def database_url_problem(url: str) -> str | None:
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


class Reader:
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
        if not printable_ascii(value):
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
