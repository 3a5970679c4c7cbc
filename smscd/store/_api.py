"""The HTTP API's clients and messages.

Theory of operation
-------------------
A client (``smscd clients add``) is a row of ``api_clients`` holding the
SHA-256 of its token, never the token (see ``ApiClientRow``);
``authenticate_api_client`` finds an unrevoked client by that hash.

``queue_api_message`` is ``POST /v1/messages``: ONE transaction inserts the
MT into the outbox (``outbound_messages`` with no MO behind it: ``client_id``,
``client_ref`` and the client's sender id in ``source_addr``) and its charge
(the client's price, on channel ``api:<name>``, final at once or pending
until the receipt as the carrier's charging mode says, like the replies of
8079). The UNIQUE index on (``client_id``, ``client_ref``) makes it
idempotent: the same reference again finds the first row and queues nothing.
The daemon group-commits concurrent requests (``queue_api_messages``: one
transaction, one look-up of the references, one INSERT of each table).
On SQLite the write transaction holds the database's lock from its start, so
the look-up cannot race; on PostgreSQL two concurrent requests may both miss
it, one INSERT then fails on the index and that request answers with the row
the other one committed.

The outbox then treats the row as any reply: claimed, submitted (with its
``source_addr``), accepted, matched to its receipts (``_receipts``), expired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import bindparam, func, insert, select, update

from smscd.api import ApiClient, MessageStatus
from smscd.reset import ChargingMode
from smscd.store._base import StoreBase
from smscd.store._cursor import prepared
from smscd.store.models import ApiClientRow, ChargeRow, OutboundRow, ReceiptRow
from smscd.store.types import OutboundState, StoreRejected

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from smscd.api import MessageRequest
    from smscd.store._cursor import Statements

__all__ = ["ApiClientListing", "ApiMessages", "api_channel"]

_QUEUE_MT = prepared(insert(OutboundRow))
_RECORD_CHARGE = prepared(insert(ChargeRow))
_FIND_REFS = prepared(
    select(OutboundRow.id, OutboundRow.client_id, OutboundRow.client_ref).where(
        OutboundRow.client_id.in_(bindparam("clients", expanding=True)),
        OutboundRow.client_ref.in_(bindparam("refs", expanding=True)),
    )
)
_AUTHENTICATE = prepared(
    select(ApiClientRow).where(
        ApiClientRow.token_hash.in_(bindparam("hashes", expanding=True)),
        ApiClientRow.revoked_at.is_(None),
    )
)

#: Subscriber numbers are addressed international (TON 1, NPI 1: E.164).
_TON_INTERNATIONAL = 1
_NPI_E164 = 1


def api_channel(client_name: str) -> str:
    """The charge channel of a client's MTs (``charges.channel``)."""
    return f"api:{client_name}"


@attrs.frozen(kw_only=True)
class ApiClientListing:
    """A client as ``smscd clients list`` shows it."""

    client: ApiClient
    created_at: datetime
    revoked_at: datetime | None


def _client_from_row(row: Any) -> ApiClient:
    return ApiClient(
        id=row.id,
        name=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        sender=row.sender,
        sender_ton=row.sender_ton,
        sender_npi=row.sender_npi,
        price_vnd=row.price_vnd,
        rate_per_s=row.rate_per_s,
        callback_url=row.callback_url,
    )


class ApiMessages(StoreBase):
    """API clients and their MTs; a part of ``SqlStore``."""

    # -- clients --------------------------------------------------------------

    def add_api_client(self, client: ApiClient, *, token_hash: str, now: datetime) -> ApiClient:
        """Register ``client`` (its ``id`` is ignored) with the hash of its
        token; returns it with its id. ``StoreRejected`` if the name is taken."""
        with self._write() as conn:
            new_id = conn.execute(
                insert(ApiClientRow)
                .values(
                    name=client.name,
                    token_hash=token_hash,
                    scopes=",".join(sorted(client.scopes)),
                    sender=client.sender,
                    sender_ton=client.sender_ton,
                    sender_npi=client.sender_npi,
                    price_vnd=client.price_vnd,
                    rate_per_s=client.rate_per_s,
                    callback_url=client.callback_url,
                    created_at=now,
                )
                .returning(ApiClientRow.id)
            ).scalar()
        return attrs.evolve(client, id=new_id)

    def list_api_clients(self) -> list[ApiClientListing]:
        with self._read() as conn:
            return [
                ApiClientListing(
                    client=_client_from_row(row),
                    created_at=row.created_at,
                    revoked_at=row.revoked_at,
                )
                for row in conn.execute(select(ApiClientRow).order_by(ApiClientRow.name))
            ]

    def revoke_api_client(self, name: str, *, now: datetime) -> bool:
        """Revoke the client's token; False if there is no such active client."""
        with self._write() as conn:
            done = conn.execute(
                update(ApiClientRow)
                .where(ApiClientRow.name == name, ApiClientRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return bool(done.rowcount)

    def authenticate_api_client(self, token_hash: str) -> ApiClient | None:
        """The unrevoked client whose token hashes to ``token_hash``."""
        (client,) = self.authenticate_api_clients([token_hash])
        return client

    def authenticate_api_clients(self, token_hashes: Sequence[str]) -> list[ApiClient | None]:
        """``authenticate_api_client`` for several hashes in one statement."""
        if not token_hashes:
            return []
        with self._read() as conn:
            found = {
                row.token_hash: _client_from_row(row)
                for row in conn.execute(_AUTHENTICATE, {"hashes": sorted(set(token_hashes))})
            }
        return [found.get(token_hash) for token_hash in token_hashes]

    # -- messages -------------------------------------------------------------

    def queue_api_message(
        self,
        client: ApiClient,
        request: MessageRequest,
        *,
        carrier: str,
        charging: ChargingMode,
        now: datetime,
    ) -> tuple[int, bool]:
        """Queue the MT and its charge in ONE transaction (see the module doc).
        Returns ``(outbound id, created)``: ``created`` is False when the
        client's ``client_ref`` was already queued (that row's id, nothing
        written)."""
        (result,) = self.queue_api_messages([(client, request, carrier, charging)], now=now)
        return result

    def queue_api_messages(
        self, items: Sequence[tuple[ApiClient, MessageRequest, str, ChargingMode]], *, now: datetime
    ) -> list[tuple[int, bool]]:
        """``queue_api_message`` for several ``(client, request, carrier,
        charging)`` in ONE transaction (the daemon's group commit), in order;
        a reference given twice in the batch is queued once. ``StoreRejected``
        (nothing written) if the database refused the batch: a concurrent
        transaction (PostgreSQL) queued one of its references meanwhile, or
        one item's data was refused; queue the items alone then (for one
        item alone, the first case answers the row the other one queued)."""
        if not items:
            return []
        try:
            with self._write() as conn:
                return self._queue_many(conn, items, now)
        except StoreRejected:
            if len(items) > 1:
                raise
            client, request, _carrier, _charging = items[0]
            with self._write() as conn:
                found = _find_refs(conn, [(client.id, request.client_ref)])
            if not found:
                raise
            return [(found[(client.id, request.client_ref)], False)]

    def _queue_many(
        self,
        conn: Statements,
        items: Sequence[tuple[ApiClient, MessageRequest, str, ChargingMode]],
        now: datetime,
    ) -> list[tuple[int, bool]]:
        known = _find_refs(conn, [(c.id, r.client_ref) for c, r, _ca, _ch in items])
        new: list[tuple[ApiClient, MessageRequest, str, ChargingMode]] = []
        for client, request, carrier, charging in items:
            key = (client.id, request.client_ref)
            if key not in known:
                known[key] = -1 - len(new)  # a placeholder: the new row's index
                new.append((client, request, carrier, charging))
        ids = (
            self._insert_numbered(
                conn,
                _QUEUE_MT,
                [
                    {
                        "inbound_id": None,
                        "client_id": client.id,
                        "client_ref": request.client_ref,
                        "carrier": carrier,
                        "destination_addr": request.msisdn,
                        "dest_addr_ton": _TON_INTERNATIONAL,
                        "dest_addr_npi": _NPI_E164,
                        "source_addr": client.sender,
                        "source_addr_ton": client.sender_ton if client.sender else None,
                        "source_addr_npi": client.sender_npi if client.sender else None,
                        "body": request.text,
                        "state": OutboundState.QUEUED.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for client, request, carrier, _charging in new
                ],
            )
            if new
            else []
        )
        if new:
            conn.execute(
                _RECORD_CHARGE,
                [
                    {
                        "inbound_id": None,
                        "outbound_id": new_id,
                        "channel": api_channel(client.name),
                        "carrier": carrier,
                        "amount_vnd": client.price_vnd,
                        "mode": charging.value,
                        "state": "final" if charging is ChargingMode.MO else "pending",
                        "created_at": now,
                        "finalized_at": now if charging is ChargingMode.MO else None,
                    }
                    for (client, _request, carrier, charging), new_id in zip(new, ids, strict=True)
                ],
            )
        results: list[tuple[int, bool]] = []
        created: set[int] = set()
        for client, request, _carrier, _charging in items:
            found = known[(client.id, request.client_ref)]
            if found >= 0:
                results.append((found, False))
                continue
            new_id = ids[-1 - found]
            results.append((new_id, new_id not in created))
            created.add(new_id)
        return results

    def api_message_status(self, client_id: int, message_id: int) -> MessageStatus | None:
        """The state of one of this client's messages; None if it is not theirs."""
        stat = (
            select(ReceiptRow.stat)
            .where(ReceiptRow.outbound_id == OutboundRow.id)
            .order_by(ReceiptRow.final.desc(), ReceiptRow.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        stmt = select(
            OutboundRow.id,
            OutboundRow.client_ref,
            OutboundRow.destination_addr,
            OutboundRow.state,
            OutboundRow.carrier,
            OutboundRow.created_at,
            OutboundRow.accepted_at,
            OutboundRow.final_at,
            stat.label("stat"),
        ).where(OutboundRow.id == message_id, OutboundRow.client_id == client_id)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return MessageStatus(
            id=row.id,
            client_ref=row.client_ref or "",
            msisdn=row.destination_addr,
            state=row.state,
            carrier=row.carrier,
            created_at=row.created_at,
            accepted_at=row.accepted_at,
            final_at=row.final_at,
            receipt_stat=row.stat,
        )

    def count_api_messages(self) -> int:
        """API MTs in the outbox, any state (tests, the status page)."""
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(OutboundRow.client_id.is_not(None))
                ).scalar()
                or 0
            )


def _find_refs(conn: Statements, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The ids of the messages already queued under these (client, reference)."""
    rows = conn.execute(
        _FIND_REFS,
        {
            "clients": sorted({client_id for client_id, _ref in keys}),
            "refs": sorted({ref for _client_id, ref in keys}),
        },
    )
    wanted = set(keys)
    return {
        (row.client_id, row.client_ref): row.id
        for row in rows
        if (row.client_id, row.client_ref) in wanted
    }
