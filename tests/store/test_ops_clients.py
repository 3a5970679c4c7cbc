"""``smscd clients add|list|revoke`` on a migrated store: the token is printed
once and only its SHA-256 stored; bad arguments name the option and store
nothing; ``list`` never shows a token."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from smscd.api import token_hash
from smscd.ops import clients

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore


def _add(url: str, name: str, **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = clients.add(url, name, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def test_add_prints_the_token_once_and_stores_its_hash(store: SqlStore, db_url: str) -> None:
    code, out, err = _add(
        db_url, "vssid-app", scopes="messages,resets", sender="VssID", price=300, rate=20.0
    )
    assert (code, err) == (0, "")
    first, token, *rest = out.splitlines()
    assert first == "client 'vssid-app' added; its token (shown once, only its hash is kept):"
    assert rest == [] and len(token) == 43
    client = store.authenticate_api_client(token_hash(token))
    assert client is not None
    assert (client.scopes, client.sender, client.sender_ton, client.sender_npi) == (
        frozenset({"messages", "resets"}),
        "VssID",
        5,
        0,
    )
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM api_clients")).scalar()
    assert stored == token_hash(token) and token not in str(stored)
    listed = io.StringIO()
    assert clients.list_clients(db_url, fmt="json", out=listed, err=io.StringIO()) == 0
    assert token not in listed.getvalue()
    (row,) = json.loads(listed.getvalue())
    assert (row["name"], row["scopes"], row["price_vnd"], row["revoked_at"]) == (
        "vssid-app",
        "messages,resets",
        300,
        None,
    )
    assert _add(db_url, "vssid-app", scopes="messages") == (
        2,
        "",
        "error: a client named 'vssid-app' exists already\n",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"scopes": "messages,admin"},
            "error: --scopes: a comma-separated list of messages, resets",
        ),
        ({"scopes": ""}, "error: --scopes: a comma-separated list of messages, resets"),
        (
            {"scopes": "messages", "sender": "VssID", "sender_ton": 1},
            "error: --sender-ton/--sender-npi: an alphanumeric sender id goes with TON 5 and NPI 0",
        ),
        (
            {"scopes": "messages", "sender": "TooLongBrandName"},
            "error: --sender: a brand name of at most 11 letters and digits, or a short code",
        ),
        ({"scopes": "messages", "sender_ton": 5}, "error: --sender-ton/--sender-npi need --sender"),
        (
            {"scopes": "messages", "rate": 0.0},
            "error: --rate: more than 0 and at most 10000 requests per second",
        ),
        (
            {"scopes": "messages", "callback_url": "ftp://x/cb"},
            "error: --callback-url: an http:// or https:// URL",
        ),
    ],
)
def test_bad_arguments_name_the_option_and_store_nothing(
    store: SqlStore, db_url: str, kwargs: dict[str, object], message: str
) -> None:
    assert _add(db_url, "app", **kwargs) == (2, "", message + "\n")
    assert store.list_api_clients() == []


def test_revoke(store: SqlStore, db_url: str) -> None:
    _add(db_url, "app", scopes="messages")
    out, err = io.StringIO(), io.StringIO()
    assert clients.revoke(db_url, "app", out=out, err=err) == 0
    assert out.getvalue() == "client 'app' revoked\n"
    assert clients.revoke(db_url, "app", out=out, err=err) == 1
    assert err.getvalue() == "error: no active client named 'app'\n"
