"""The ``[api]`` table: where the HTTP API listens, how it routes a number to
a carrier, and its message templates."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smscd.config._read import Reader, listen_address
from smscd.config._types import ApiConfig, ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["read_api", "template_fields"]

_PREFIX = re.compile(r"[0-9]{1,15}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_TEMPLATE = 1000


def template_fields(text: str) -> list[str] | str:
    """The ``{name}`` placeholders of a template, or what is wrong with it
    (positional, indexed or formatted fields are refused: plain names only)."""
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        return f"is not a valid template: {exc}"
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _NAME.fullmatch(field) or spec or conversion:
            return f"placeholder {{{field}}} must be a plain lowercase name"
        fields.append(field)
    return fields


def _prefix(text: str) -> str:
    """A route prefix in international form: ``032`` -> ``8432``."""
    return "84" + text[1:] if text.startswith("0") else text


def read_api(source: str, table: object, carriers: Sequence[str]) -> ApiConfig:
    api = Reader(source, "api", table)
    listen_text = api.text("listen", "127.0.0.1:8079")
    address = listen_address(listen_text)
    if isinstance(address, str):
        raise api.error("listen", address)
    cert = api.opt_text("cert")
    key = api.opt_text("key")
    if (cert is None) != (key is None):
        raise api.error("cert" if cert is None else "key", "cert and key go together")
    max_body = api.integer("max_body", 16384, minimum=256, maximum=1_048_576)
    default_route = api.text("default_route")
    if default_route not in carriers:
        raise api.error("default_route", f"no [[smsc]] is named {default_route!r}")
    routes = _read_routes(source, api.table.get("routes", {}), carriers)
    api.used.add("routes")
    templates = _read_templates(source, api.table.get("templates", {}))
    api.used.add("templates")
    api.finish()
    return ApiConfig(
        listen=f"{address[0]}:{address[1]}",
        cert=cert,
        key=key,
        max_body=max_body,
        routes=routes,
        default_route=default_route,
        templates=templates,
    )


def _read_routes(
    source: str, table: object, carriers: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: api.routes: must be a table")
    routes: dict[str, str] = {}
    for raw, carrier in table.items():
        where = f"{source}: api.routes.{raw}"
        if not _PREFIX.fullmatch(raw):
            raise ConfigError(f"{where}: a prefix must be 1 to 15 digits")
        if not isinstance(carrier, str) or carrier not in carriers:
            raise ConfigError(f"{where}: must name an [[smsc]] (got {carrier!r})")
        prefix = _prefix(raw)
        if prefix in routes and routes[prefix] != carrier:
            raise ConfigError(f"{where}: the same prefix as another route")
        routes[prefix] = carrier
    return tuple(sorted(routes.items(), key=lambda item: (-len(item[0]), item[0])))


def _read_templates(source: str, table: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: api.templates: must be a table")
    templates: list[tuple[str, str]] = []
    for name, text in table.items():
        where = f"{source}: api.templates.{name}"
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: a name must be lowercase letters, digits and _")
        if not isinstance(text, str) or not text or len(text) > _MAX_TEMPLATE:
            raise ConfigError(f"{where}: must be a non-empty string of at most 1000 characters")
        fields = template_fields(text)
        if isinstance(fields, str):
            raise ConfigError(f"{where}: {fields}")
        templates.append((name, text))
    return tuple(sorted(templates))
