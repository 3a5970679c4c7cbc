"""``smscd clients add|list|revoke``: the HTTP API's clients and their tokens.

``add`` draws a random token, prints it ONCE, and stores only its SHA-256
(``smscd.api.token_hash``): a lost token is replaced by revoking the client
and adding it again under another name. ``list`` never shows a token.
``revoke`` ends a token at once (the next request with it gets 401).

A sender id is an alphanumeric brand name (at most 11 GSM-7 letters and
digits, sent with TON 5, NPI 0: the only way carriers take one) or a short
code of digits (TON and NPI as given, default 0/0: "unknown", which the
carrier completes). No sender: the carrier's own source address.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from smscd.api import ApiClient, new_token, token_hash
from smscd.ops._common import CommandFailed, using_store
from smscd.store import StoreRejected

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["SCOPES", "add", "list_clients", "revoke"]

SCOPES = ("messages", "resets")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 ]{1,11}")
_SHORT_CODE = re.compile(r"[0-9]{1,15}")
_TON_ALPHANUMERIC = 5
_NPI_UNKNOWN = 0


def _client(
    name: str,
    scopes: str,
    sender: str | None,
    sender_ton: int | None,
    sender_npi: int | None,
    price: int,
    rate: float,
    callback_url: str | None,
) -> ApiClient:
    """The client the arguments describe; CommandFailed naming the bad one."""
    if not _NAME.fullmatch(name):
        raise CommandFailed("error: NAME: 1 to 64 letters, digits, '.', '-' and '_'")
    chosen = frozenset(s.strip() for s in scopes.split(",") if s.strip())
    if not chosen or not chosen <= set(SCOPES):
        raise CommandFailed(f"error: --scopes: a comma-separated list of {', '.join(SCOPES)}")
    ton, npi = 0, 0
    if sender is not None:
        if _SHORT_CODE.fullmatch(sender):
            ton = 0 if sender_ton is None else sender_ton
            npi = 0 if sender_npi is None else sender_npi
        elif _ALPHANUMERIC.fullmatch(sender):
            ton = _TON_ALPHANUMERIC if sender_ton is None else sender_ton
            npi = _NPI_UNKNOWN if sender_npi is None else sender_npi
            if (ton, npi) != (_TON_ALPHANUMERIC, _NPI_UNKNOWN):
                raise CommandFailed(
                    "error: --sender-ton/--sender-npi: an alphanumeric sender id goes with"
                    " TON 5 and NPI 0"
                )
        else:
            raise CommandFailed(
                "error: --sender: a brand name of at most 11 letters and digits, or a short code"
            )
    elif sender_ton is not None or sender_npi is not None:
        raise CommandFailed("error: --sender-ton/--sender-npi need --sender")
    if not 0 <= ton <= 6 or not 0 <= npi <= 18:
        raise CommandFailed("error: --sender-ton: 0 to 6; --sender-npi: 0 to 18")
    if not 0 <= price <= 1_000_000:
        raise CommandFailed("error: --price: 0 to 1000000 VND")
    if not 0 < rate <= 10_000:
        raise CommandFailed("error: --rate: more than 0 and at most 10000 requests per second")
    if callback_url is not None:
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CommandFailed("error: --callback-url: an http:// or https:// URL")
    return ApiClient(
        id=0,
        name=name,
        scopes=chosen,
        sender=sender,
        sender_ton=ton,
        sender_npi=npi,
        price_vnd=price,
        rate_per_s=rate,
        callback_url=callback_url,
    )


def add(
    database_url: str,
    name: str,
    *,
    scopes: str,
    sender: str | None = None,
    sender_ton: int | None = None,
    sender_npi: int | None = None,
    price: int = 0,
    rate: float = 10.0,
    callback_url: str | None = None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Register the client and print its token, once."""
    token = new_token()
    try:
        client = _client(name, scopes, sender, sender_ton, sender_npi, price, rate, callback_url)
        try:
            using_store(
                database_url,
                lambda store: store.add_api_client(
                    client, token_hash=token_hash(token), now=datetime.now(UTC)
                ),
            )
        except CommandFailed as exc:
            if isinstance(exc.__cause__, StoreRejected):
                raise CommandFailed(f"error: a client named {name!r} exists already") from exc
            raise
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    print(f"client {name!r} added; its token (shown once, only its hash is kept):", file=out)
    print(token, file=out)
    return 0


def list_clients(database_url: str, *, fmt: str, out: TextIO, err: TextIO) -> int:
    try:
        listing = using_store(database_url, lambda store: store.list_api_clients())
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    rows = [
        {
            "name": item.client.name,
            "scopes": ",".join(sorted(item.client.scopes)),
            "sender": item.client.sender,
            "sender_ton": item.client.sender_ton,
            "price_vnd": item.client.price_vnd,
            "rate_per_s": item.client.rate_per_s,
            "callback_url": item.client.callback_url,
            "created_at": item.created_at.isoformat(timespec="seconds"),
            "revoked_at": (
                item.revoked_at.isoformat(timespec="seconds")
                if item.revoked_at is not None
                else None
            ),
        }
        for item in listing
    ]
    if fmt == "json":
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        print("no clients", file=out)
        return 0
    print(f"{'name':<20} {'scopes':<16} {'sender':<12} {'price':>6} {'rate':>6}  state", file=out)
    for row in rows:
        state = "revoked " + str(row["revoked_at"]) if row["revoked_at"] else "active"
        print(
            f"{row['name']!s:<20} {row['scopes']!s:<16} {row['sender'] or '-'!s:<12}"
            f" {row['price_vnd']!s:>6} {row['rate_per_s']!s:>6}  {state}",
            file=out,
        )
    return 0


def revoke(database_url: str, name: str, *, out: TextIO, err: TextIO) -> int:
    try:
        done = using_store(
            database_url, lambda store: store.revoke_api_client(name, now=datetime.now(UTC))
        )
    except CommandFailed as exc:
        print(exc, file=err)
        return exc.exit_code
    if not done:
        print(f"error: no active client named {name!r}", file=err)
        return 1
    print(f"client {name!r} revoked", file=out)
    return 0
