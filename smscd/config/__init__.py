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

The modules: ``_types`` holds the values and :class:`ConfigError`; ``_read``
reads one table and checks its values; ``_secrets`` finds passwords and the
status page's token; ``_smsc`` reads an ``[[smsc]]`` table; ``_api`` the ``[api]`` table (the
HTTP API's listener, routes and templates); ``_load`` reads
the file and each section; ``_render`` writes what ``check-config`` prints.
"""

from __future__ import annotations

from smscd.config._load import load_config, parse_config
from smscd.config._render import render_effective
from smscd.config._types import (
    DEFAULT_CONFIG_PATH,
    ApiConfig,
    Config,
    ConfigError,
    LogConfig,
    OutboxConfig,
    SmscConfig,
    resolve_config_path,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ApiConfig",
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
