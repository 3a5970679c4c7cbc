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
A store failure is ``ApiUnavailable``: the app answers 503 and nothing was
written.

The HTTP side runs in a process of its own (``smscd.api.front``), so that
parsing requests and writing responses take a core the event loop does not
need: ``run_front`` binds ``[api] listen`` here (a port taken is the daemon's
error, in one line), starts the front with that socket and one end of a
socketpair, and answers its calls of ``DaemonApi`` there
(``smscd.api._remote``). A front that dies is started again; the socket
stays open meanwhile, so connections wait in its queue. The front remembers
a client found by its token for a second (``smscd.api._remote``), so a
revocation takes effect within that.

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
import socket
import ssl
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import attrs
import httpx
import structlog
import trio

from smscd.api import ApiUnavailable, MessageAccepted, token_hash
from smscd.api._remote import FrameStream, serve_backend
from smscd.service._batching import _GroupCommit
from smscd.service.api_resets import reset_call
from smscd.store import StoreError, StoreRejected

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from smscd.api import (
        ApiBackend,
        ApiClient,
        MessageRequest,
        MessageStatus,
        ResetAnswer,
        ResetCall,
    )
    from smscd.config import ApiConfig, LogConfig
    from smscd.reset import ChargingMode
    from smscd.service._state import DaemonState
    from smscd.store.sql import DueCallback

__all__ = [
    "CALLBACK_BASE_S",
    "CALLBACK_MAX_ATTEMPTS",
    "CALLBACK_MAX_S",
    "CALLBACK_TIMEOUT_S",
    "DaemonApi",
    "FrontWatch",
    "run_front",
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
#: Pause before a front process that ended is started again.
FRONT_RESTART_S: Final = 1.0
#: How long a stopping front may finish its requests before it is killed.
FRONT_STOP_S: Final = 3.0


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
        # The front remembers the answer (``RemoteBackend``): asked here
        # about once a second per client.
        try:
            return await self._logins.submit(token_hash(token))
        except StoreError as exc:
            raise ApiUnavailable(str(exc)) from exc

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


@attrs.define
class FrontWatch:
    """Whether the API's front process runs (``/healthz`` says when not)."""

    pid: int | None = None


async def run_front(
    backend: ApiBackend,
    api: ApiConfig,
    log_config: LogConfig,
    observe: Callable[[str, int], None],
    *,
    record: Callable[[Mapping[str, Any], str], None] | None = None,
    watch: FrontWatch | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``[api] listen`` and keep the front process serving it with
    ``backend``, until cancelled; ``started()`` reports the bound port. A
    port taken or an unreadable certificate raises OSError before
    ``started()``. A front that ends is started again after
    ``FRONT_RESTART_S``; meanwhile the kernel queues new connections on the
    socket, which stays open here. ``record(event, level)`` gets the front's
    warnings and errors (the status page's last warnings)."""
    host, _, port = api.listen.rpartition(":")
    if api.cert is not None and api.key is not None:
        # The front loads them again; a bad file fails here, in one line.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(api.cert, api.key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, int(port)), family=family, backlog=1024)
    with listener:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task_status.started(listener.getsockname()[1])
        setup = {
            "op": "setup",
            "max_body": api.max_body,
            "templates": dict(api.templates),
            "cert": api.cert,
            "key": api.key,
            "log_format": log_config.format,
            "log_level": log_config.level,
        }
        watch = watch or FrontWatch()
        while True:
            await _one_front(listener, setup, backend, observe, record, watch)
            await trio.sleep(FRONT_RESTART_S)


async def _one_front(
    listener: socket.socket,
    setup: dict[str, object],
    backend: ApiBackend,
    observe: Callable[[str, int], None],
    record: Callable[[Mapping[str, Any], str], None] | None,
    watch: FrontWatch,
) -> None:
    """Run one front process until it ends or this is cancelled."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        try:
            process = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "smscd.api.front",
                    str(theirs.fileno()),
                    str(listener.fileno()),
                ],
                pass_fds=(theirs.fileno(), listener.fileno()),
            )
        except OSError as exc:
            log.error("api_front_failed", error=str(exc))
            return
        theirs.close()
        log.info("api_front_started", pid=process.pid)
        watch.pid = process.pid
        frames = FrameStream(trio.SocketStream(trio.socket.from_stdlib_socket(ours)))
        try:
            frames.send(setup)
            await serve_backend(frames, backend, observe, record)
        finally:
            watch.pid = None
            with trio.CancelScope(shield=True):
                # Closing our end ends the front: its requests in progress get
                # 503, and it exits within hypercorn's graceful second.
                await frames.stream.aclose()
                with trio.move_on_after(FRONT_STOP_S):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    log.error("api_front_exited", pid=process.pid, returncode=process.returncode)
