"""The daemon's side of the HTTP API: :class:`DaemonApi` answers the app
(``smscd.api.ApiBackend``) from the store, and ``send_callbacks`` posts the
final states of API messages to their clients.

Theory of operation
-------------------
Every call is a short store transaction in a database thread (``db``, through
``db_limiter``, like every stage). ``send_message`` routes the number to a
carrier (``[api.routes]``, longest prefix, else ``default_route``) and
commits the MT with its charge in ONE transaction (``queue_api_messages``:
concurrent requests share one transaction, a group commit, as their token
look-ups share one statement); the 202 goes out only after that commit. The
outbox's claimer, woken by the commit (``want_claim``), then takes the
row like any queued reply and submits it with the client's sender id, so a
``kill -9`` after the 202 leaves a queued row that the next daemon sends,
once. ``reset`` is the reset stage's (``smscd.service.api_resets``).
``serve_api`` serves the app with the status page's hypercorn settings, over
TLS when ``[api] cert``/``key`` are set. A store failure is
``ApiUnavailable``: the app answers 503 and nothing was written. A client
found by its token is remembered for ``TOKEN_CACHE_S`` (one look-up a second
per client, not one per request), so a revocation takes effect within that.

Callbacks: the transaction that makes an API message final owes its client a
callback (a row of ``api_callbacks``; see ``smscd.store._api_callbacks``).
``send_callbacks`` posts the due ones (JSON ``{"id", "client_ref", "state",
"receipt_stat"}``) with httpx, a few at a time, each within
``CALLBACK_TIMEOUT_S``; a 2xx is done, anything else is retried after 2 s,
4 s, ... at most 5 min, and given up after ``CALLBACK_MAX_ATTEMPTS`` posts.
A crash between a post and its record posts it again: at least once.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Final, cast

import attrs
import httpx
import structlog
import trio
from hypercorn.trio import serve

from smscd.api import ApiUnavailable, MessageAccepted, token_hash
from smscd.service._batching import _GroupCommit
from smscd.service.api_resets import reset_call
from smscd.store import StoreError, StoreRejected
from smscd.web import hypercorn_config

if TYPE_CHECKING:
    from hypercorn.typing import Framework
    from starlette.applications import Starlette

    from smscd.api import ApiClient, MessageRequest, MessageStatus, ResetAnswer, ResetCall
    from smscd.config import ApiConfig
    from smscd.reset import ChargingMode
    from smscd.service._state import DaemonState
    from smscd.store.sql import DueCallback

__all__ = [
    "CALLBACK_BASE_S",
    "CALLBACK_MAX_ATTEMPTS",
    "CALLBACK_MAX_S",
    "CALLBACK_TIMEOUT_S",
    "TOKEN_CACHE_S",
    "DaemonApi",
    "serve_api",
]

log = structlog.get_logger("smscd")

CALLBACK_BASE_S: Final = 2.0
CALLBACK_MAX_S: Final = 300.0
CALLBACK_MAX_ATTEMPTS: Final = 12
CALLBACK_TIMEOUT_S: Final = 5.0
#: Posts in flight at once.
CALLBACK_CONCURRENCY: Final = 8
#: How often the due callbacks are read when there were none.
CALLBACK_POLL_S: Final = 1.0
#: Seconds a client found by its token is trusted without asking the store
#: again: a revoked token is refused within this.
TOKEN_CACHE_S: Final = 1.0
KNOWN_TOKENS_MAX: Final = 1000


def callback_delay(attempts: int) -> float:
    """Seconds before the next post of a callback already posted ``attempts``
    times: 2, 4, 8 ... capped at 5 minutes, with +-20 % jitter."""
    delay = min(CALLBACK_MAX_S, CALLBACK_BASE_S * 2 ** min(attempts - 1, 16))
    return float(delay * random.uniform(0.8, 1.2))


_Queued = tuple[int, bool]
_ToQueue = tuple["ApiClient", "MessageRequest", str, "ChargingMode"]


@attrs.define(eq=False)
class DaemonApi:
    """``smscd.api.ApiBackend`` over the daemon's store (see the module doc)."""

    daemon: DaemonState
    api: ApiConfig
    #: Concurrent requests' look-ups and MTs, each many per statement or
    #: transaction under load (``_GroupCommit``).
    _logins: _GroupCommit[str, ApiClient | None] = attrs.field(init=False)
    _queued: _GroupCommit[_ToQueue, _Queued] = attrs.field(init=False)
    #: Clients found by token hash, each until a trio clock time
    #: (``TOKEN_CACHE_S``): a revocation takes effect within that.
    _known: dict[str, tuple[ApiClient, float]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self._logins = _GroupCommit(partial(self.daemon.db, self._look_up))
        self._queued = _GroupCommit(partial(self.daemon.db, self._queue))

    def _look_up(self, hashes: list[str]) -> list[ApiClient | Exception | None]:
        """Blocking: the clients of a batch of token hashes, in one statement."""
        return list(self.daemon.store.authenticate_api_clients(hashes))

    def _queue(self, items: list[_ToQueue]) -> list[_Queued | Exception]:
        """Blocking: a batch of MTs in one transaction; if the store refuses
        the batch, each MT in one of its own, so that one bad item (or a
        reference another daemon queued meanwhile) fails alone."""
        store = self.daemon.store
        try:
            return list(store.queue_api_messages(items, now=datetime.now(UTC)))
        except StoreRejected:
            if len(items) == 1:
                raise
        results: list[_Queued | Exception] = []
        for item in items:
            try:
                (queued,) = store.queue_api_messages([item], now=datetime.now(UTC))
            except StoreError as exc:
                results.append(exc)
            else:
                results.append(queued)
        return results

    async def authenticate(self, token: str) -> ApiClient | None:
        hashed = token_hash(token)
        now = trio.current_time()
        known = self._known.get(hashed)
        if known is not None and known[1] > now:
            return known[0]
        try:
            client = await self._logins.submit(hashed)
        except StoreError as exc:
            raise ApiUnavailable(str(exc)) from exc
        if client is None:
            self._known.pop(hashed, None)
        else:
            if len(self._known) >= KNOWN_TOKENS_MAX:
                self._known.clear()
            self._known[hashed] = (client, now + TOKEN_CACHE_S)
        return client

    async def send_message(self, client: ApiClient, request: MessageRequest) -> MessageAccepted:
        carrier = self.api.route(request.msisdn)
        charging = self.daemon.config.smsc(carrier).charging
        try:
            outbound_id, created = await self._queued.submit((client, request, carrier, charging))
        except StoreError as exc:
            log.warning("api_message_not_queued", client=client.name, error=str(exc))
            raise ApiUnavailable(str(exc)) from exc
        if created:
            self.daemon.want_claim(carrier)
        # Logged by the app's api_request line (with its outbound_id).
        return MessageAccepted(id=outbound_id, client_ref=request.client_ref, created=created)

    async def message_status(self, client: ApiClient, message_id: int) -> MessageStatus | None:
        try:
            return await self.daemon.db(self.daemon.store.api_message_status, client.id, message_id)
        except StoreError as exc:
            raise ApiUnavailable(str(exc)) from exc

    async def reset(self, client: ApiClient, call: ResetCall) -> ResetAnswer:
        return await reset_call(self.daemon, client, call)

    # -- callbacks --------------------------------------------------------------

    async def send_callbacks(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """Post the due callbacks, for ever (see the module doc)."""
        limiter = trio.CapacityLimiter(CALLBACK_CONCURRENCY)
        async with httpx.AsyncClient(
            timeout=CALLBACK_TIMEOUT_S, transport=transport, follow_redirects=False
        ) as http:
            while True:
                try:
                    due = await self.daemon.db(
                        self.daemon.store.due_api_callbacks, now=datetime.now(UTC)
                    )
                except StoreError as exc:
                    log.warning("api_callbacks_unreadable", error=str(exc))
                    due = []
                if due:
                    async with trio.open_nursery() as nursery:
                        for callback in due:
                            nursery.start_soon(self._post, http, limiter, callback)
                else:
                    await trio.sleep(CALLBACK_POLL_S)

    async def _post(
        self, http: httpx.AsyncClient, limiter: trio.CapacityLimiter, callback: DueCallback
    ) -> None:
        body = {
            "id": callback.outbound_id,
            "client_ref": callback.client_ref,
            "state": callback.state,
            "receipt_stat": callback.receipt_stat,
        }
        error: str | None = None
        async with limiter:
            try:
                with trio.fail_after(CALLBACK_TIMEOUT_S * 2):
                    response = await http.post(callback.url, json=body)
                if not response.is_success:
                    error = f"HTTP {response.status_code}"
            except (httpx.HTTPError, trio.TooSlowError) as exc:
                error = type(exc).__name__
        attempts = callback.attempts + 1
        now = datetime.now(UTC)
        store = self.daemon.store
        with trio.CancelScope(shield=True):
            try:
                if error is None:
                    await self.daemon.db(
                        store.api_callback_done,
                        callback.id,
                        outcome="delivered",
                        error=None,
                        now=now,
                    )
                    log.info(
                        "api_callback_sent",
                        client=callback.client_name,
                        outbound_id=callback.outbound_id,
                        state=callback.state,
                        attempts=attempts,
                    )
                elif attempts >= CALLBACK_MAX_ATTEMPTS:
                    await self.daemon.db(
                        store.api_callback_done,
                        callback.id,
                        outcome="abandoned",
                        error=error,
                        now=now,
                    )
                    log.error(
                        "api_callback_abandoned",
                        client=callback.client_name,
                        outbound_id=callback.outbound_id,
                        attempts=attempts,
                        error=error,
                    )
                else:
                    delay = callback_delay(attempts)
                    await self.daemon.db(
                        store.api_callback_retry,
                        callback.id,
                        error=error,
                        next_attempt_at=now + timedelta(seconds=delay),
                    )
                    log.warning(
                        "api_callback_failed",
                        client=callback.client_name,
                        outbound_id=callback.outbound_id,
                        attempts=attempts,
                        error=error,
                        retry_in=round(delay, 1),
                    )
            except StoreError as exc:
                log.warning(
                    "api_callback_unrecorded", outbound_id=callback.outbound_id, error=str(exc)
                )


async def serve_api(
    app: Starlette,
    listen: str,
    *,
    cert: str | None = None,
    key: str | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listen`` (``HOST:PORT``; port 0 picks one), over TLS
    when ``cert`` and ``key`` are set, until cancelled; ``started()`` reports
    the bound port. A port taken or an unreadable certificate raises OSError
    before ``started()``."""
    config = hypercorn_config(listen)
    if cert is not None and key is not None:
        config.certfile = cert
        config.keyfile = key
        config.create_ssl_context()  # an unreadable file fails here, as an OSError
    async with trio.open_nursery() as nursery:
        # Starlette is an ASGI 3 app; hypercorn's type names its own protocol.
        framework = cast("Framework", app)
        binds: list[str] = await nursery.start(partial(serve, framework, config))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
