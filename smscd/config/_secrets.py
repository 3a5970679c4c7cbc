"""Where secrets come from: a bind password (``password_file``, a systemd
credential, or ``password`` inline for development) and the status page's
token (``token_file`` or ``token_credential``). Credentials are read from
``$CREDENTIALS_DIRECTORY``. No message names a secret's value.
"""

from __future__ import annotations

import os
from pathlib import Path

from smscd.config._read import Reader, printable_ascii

__all__ = ["MIN_TOKEN_LENGTH", "read_metrics_token", "read_password"]

#: Shortest status page token accepted.
MIN_TOKEN_LENGTH = 16


def read_password(reader: Reader, name: str) -> tuple[str, str]:
    """The bind password of ``[[smsc]]`` ``name`` and where it came from."""
    password, origin = _find_password(reader, name)
    if not printable_ascii(password):
        raise reader.error("password", f"must be printable ASCII (from {origin})")
    return password, origin


def _find_password(reader: Reader, name: str) -> tuple[str, str]:
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


def read_metrics_token(reader: Reader) -> tuple[str | None, str | None]:
    """``[metrics] token_file`` or ``token_credential``: the status page's
    bearer token and where it came from, or (None, None) when neither is given."""
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
    if not printable_ascii(token) or " " in token:
        raise reader.error(key, f"the token must be printable ASCII without spaces (from {origin})")
    if len(token) < MIN_TOKEN_LENGTH:
        raise reader.error(
            key, f"the token must be at least {MIN_TOKEN_LENGTH} characters (from {origin})"
        )
    return token, origin


def _read_secret_file(reader: Reader, key: str, path: Path, what: str) -> str:
    try:
        return path.read_bytes().decode("utf-8").strip()
    except OSError as exc:
        raise reader.error(key, f"cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise reader.error(key, f"{what} is not UTF-8 text") from exc
