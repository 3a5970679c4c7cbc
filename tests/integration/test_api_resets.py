"""``reset_call`` in process, against a real SQLite store and real hashing
processes: a reset by API changes the password (argon2id, must-change) and
answers it once; every outcome is recorded like an MO (channel, client, no
password anywhere) with no reply and no charge; the limits are shared with the
8079 MOs in both orders; the caller's number is held like an MO's sender; a
failure writes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import argon2
import attrs
import httpx
import pytest
import sqlalchemy as sa
import trio
import trio.testing
from structlog.testing import capture_logs

from smscd._hashing import HashFailed, HashProcesses
from smscd.api import ApiClient, ResetCall
from smscd.config import parse_config
from smscd.daemon import Daemon
from smscd.link import Link
from smscd.reset import Outcome, Pipeline
from smscd.service._items import _NeedsHash
from smscd.service.api_resets import reset_call
from smscd.service.decide import _HashesElsewhere
from smscd.store import StoreError
from smscd.store.sql import open_store
from tests.integration.daemon_harness import (
    SMSCD,
    DaemonProcess,
    free_port,
    http_get,
    open_daemon,
)
from tests.integration.test_daemon import OK, RATE_LIMITED, reply_for
from tests.pg import PG_ENV, PgSchemas
from tests.store.helpers import CODE, PHONE, add_account, add_mo, rows

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

HOTLINE = ApiClient(id=1, name="hotline", scopes=frozenset({"resets"}))
RATE_LIMITED_TEXT = (
    "Ban da yeu cau cap lai mat khau qua so lan cho phep. Vui long thu lai sau hoac goi 1900.9068"
)


def _call(msisdn: str = PHONE, code: str = CODE, channel: str = "hotline") -> ResetCall:
    return ResetCall(msisdn=msisdn, bhxh_code=code, channel=channel)


def _add_client(daemon: Daemon, client: ApiClient) -> None:
    """The client's row (``smscd clients add``), for the calls' foreign key."""
    with daemon.store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO api_clients (id, name, token_hash, scopes, rate_per_s, created_at)"
            " VALUES (?, ?, ?, ?, 10, '2026-01-01 00:00:00.000000')",
            (client.id, client.name, "0" * 63 + str(client.id), ",".join(client.scopes)),
        )


@asynccontextmanager
async def open_state(tmp_path: Path, *, per_day: int = 3) -> AsyncIterator[Daemon]:
    """A daemon's state with its hashing process running (no link, no intake)."""
    url = f"sqlite:///{tmp_path / 'smscd.db'}"
    config = parse_config(
        {
            "database": {"url": url},
            "smsc": [
                {
                    "name": "sim",
                    "host": "127.0.0.1",
                    "port": 9,
                    "system_id": "smscd",
                    "password": "secret",
                }
            ],
            "reset": {
                "rate_limit_per_day": per_day,
                "hash_memory_kib": 1024,
                "hash_time_cost": 1,
            },
            "metrics": {"listen": ""},
        },
        source="test.toml",
    )
    daemon = Daemon(
        config=config,
        store=open_store(url, create_if_missing=True),
        pipeline=Pipeline(
            policy=config.reset, templates=config.templates, hasher=_HashesElsewhere()
        ),
        links={"sim": Link(config.smscs[0].link)},
        hashing=HashProcesses(config.reset.hash, 1),
    )
    add_account(daemon.store)  # CODE, registered to PHONE
    _add_client(daemon, HOTLINE)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.hashing.run)
            yield daemon
            nursery.cancel_scope.cancel()
    finally:
        daemon.store.close()


def _calls(daemon: Daemon) -> list[dict[str, Any]]:
    """The rows of API calls (every channel but SMS)."""
    query = sa.text(
        "SELECT id, carrier, source_addr, msisdn, destination_addr, text, state,"
        " outcome, bhxh_code, channel, client_id, received_at, decided_at"
        " FROM inbound_messages WHERE channel != 'sms' ORDER BY id"
    )
    with daemon.store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _account(daemon: Daemon) -> tuple[str | None, bool]:
    account = daemon.store.find_account(CODE)
    assert account is not None
    return account.password_hash, account.must_change


def _no_password_at_rest(tmp_path: Path, daemon: Daemon, password: str) -> None:
    daemon.store.checkpoint()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("smscd.db*"))
    # Not as a value of its own; a timestamp's microseconds (after a dot) may
    # happen to be the same six digits.
    assert re.search(rb"(?<![0-9.])" + password.encode() + rb"(?![0-9])", raw) is None


async def test_a_reset_by_api_sets_a_hashed_password_and_answers_it(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            answer = await reset_call(daemon, HOTLINE, _call())
            assert answer.outcome == "reset_ok"
            assert answer.password is not None
            assert re.fullmatch(r"\d{6}", answer.password)
            password_hash, must_change = _account(daemon)
            assert password_hash is not None
            assert password_hash.startswith("$argon2id$")
            assert argon2.PasswordHasher().verify(password_hash, answer.password)
            assert must_change
            (call,) = _calls(daemon)
            assert call["id"] == answer.id
            assert {k: v for k, v in call.items() if not k.endswith("_at")} == {
                "id": answer.id,
                "carrier": "api",
                "source_addr": PHONE,
                "msisdn": PHONE,
                "destination_addr": "api",
                "text": f"BH MK {CODE}",
                "state": "decided",
                "outcome": "reset_ok",
                "bhxh_code": CODE,
                "channel": "hotline",
                "client_id": HOTLINE.id,
            }
            assert call["received_at"] <= call["decided_at"]
            # The call is not an SMS: no reply queued, no charge.
            assert rows(daemon.store, "SELECT id FROM outbound_messages") == []
            assert rows(daemon.store, "SELECT id FROM charges") == []
            # The caller's number is free again.
            assert daemon.senders.try_hold(PHONE)
            _no_password_at_rest(tmp_path, daemon, answer.password)


@pytest.mark.parametrize(
    ("call", "outcome", "code"),
    [
        (_call(msisdn="84912345678"), "mismatch", CODE),  # not the registered phone
        (_call(code="9999999999"), "mismatch", "9999999999"),  # no such code
        (_call(code="12345"), "invalid_code", None),
        (_call(code="01234X6789"), "invalid_code", None),
    ],
)
async def test_a_refused_call_changes_nothing_and_is_recorded(
    tmp_path: Path, call: ResetCall, outcome: str, code: str | None
) -> None:
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            answer = await reset_call(daemon, HOTLINE, call)
            assert (answer.outcome, answer.password) == (outcome, None)
            assert _account(daemon) == (None, False)
            (recorded,) = _calls(daemon)
            assert (recorded["id"], recorded["outcome"], recorded["bhxh_code"]) == (
                answer.id,
                outcome,
                code,
            )
            assert recorded["text"] == f"BH MK {call.bhxh_code}"
            assert (recorded["msisdn"], recorded["channel"]) == (call.msisdn, "hotline")
            assert rows(daemon.store, "SELECT id FROM outbound_messages") == []
            assert rows(daemon.store, "SELECT id FROM charges") == []


async def test_a_code_in_groups_is_read_as_an_mos_would_be(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            answer = await reset_call(daemon, HOTLINE, _call(code="0123 456.789"))
            assert answer.outcome == "reset_ok"
            (call,) = _calls(daemon)
            assert (call["text"], call["bhxh_code"]) == ("BH MK 0123 456.789", CODE)


async def test_the_daily_limit_counts_api_resets_and_mos_alike(tmp_path: Path) -> None:
    """Limit 2 a day: an API reset, then an 8079 reset, then both channels
    are refused."""
    with trio.fail_after(30):
        async with open_state(tmp_path, per_day=2) as daemon:
            first = await reset_call(daemon, HOTLINE, _call())
            assert first.outcome == "reset_ok"
            now = datetime.now(UTC)

            # An MO of the same phone: the decide stage counts the API reset.
            mo = add_mo(daemon.store, carrier="sim", at=now)
            (quick,) = daemon.decide_quickly([mo])
            assert isinstance(quick, _NeedsHash)  # one reset left for today
            decision = quick.decision
            hashed = argon2.PasswordHasher(memory_cost=1024, time_cost=1).hash(quick.password)
            daemon.commit_decisions([attrs.evolve(decision, password_hash=hashed)])

            # The limit is reached: the next MO gets the rate_limited reply...
            mo = add_mo(daemon.store, carrier="sim", at=now, text=f"bh mk {CODE}")
            ((limited, _outbound),) = daemon.decide_quickly([mo])  # type: ignore[misc]
            assert limited.outcome is Outcome.RATE_LIMITED
            assert limited.reply_text == RATE_LIMITED_TEXT
            # ...and so does the next API call, of any channel.
            answer = await reset_call(daemon, HOTLINE, _call(channel="app"))
            assert (answer.outcome, answer.password) == ("rate_limited", None)
            counts = rows(
                daemon.store,
                "SELECT channel, outcome, count(*) FROM inbound_messages"
                " GROUP BY channel, outcome ORDER BY channel, outcome",
            )
            assert [tuple(r) for r in counts] == [
                ("app", "rate_limited", 1),
                ("hotline", "reset_ok", 1),
                ("sms", "rate_limited", 1),
                ("sms", "reset_ok", 1),
            ]


async def test_a_call_waits_while_its_number_has_a_decision_in_progress(tmp_path: Path) -> None:
    """The caller's number is held like an MO's sender: a call waits for an
    MO of that phone being decided, and the intake does not decide an MO of
    it while a call is in progress."""
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon, trio.open_nursery() as nursery:
            assert daemon.senders.try_hold(PHONE)  # an MO of the phone in progress
            answers: list[Any] = []

            async def call() -> None:
                answers.append(await reset_call(daemon, HOTLINE, _call()))

            nursery.start_soon(call)
            await trio.sleep(0.3)
            assert answers == []
            assert _calls(daemon) == []
            daemon.senders.release(PHONE)
            # Now the call holds the number until its commit.
            await trio.testing.wait_all_tasks_blocked()
            assert not daemon.senders.try_hold(PHONE)
            while not answers:
                await trio.sleep(0.01)
            assert answers[0].outcome == "reset_ok"
            assert daemon.senders.try_hold(PHONE)


async def test_a_hashing_failure_writes_nothing_and_frees_the_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:

            async def dies(password: str) -> tuple[str, float]:
                raise HashFailed("hashing process 0 died")

            monkeypatch.setattr(daemon.hashing, "hash", dies)
            with pytest.raises(HashFailed):
                await reset_call(daemon, HOTLINE, _call())
            assert _calls(daemon) == []
            assert _account(daemon) == (None, False)
            assert daemon.senders.try_hold(PHONE)


async def test_a_commit_that_fails_half_way_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call's row and the password are one transaction: the account is
    gone by the commit, so the password update fails after the row's insert,
    and the row is rolled back with it."""
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            commit = daemon.store.commit_api_reset

            def account_gone_first(*args: Any, **kwargs: Any) -> int:
                with daemon.store.engine.begin() as conn:
                    conn.exec_driver_sql("DELETE FROM accounts")
                return commit(*args, **kwargs)

            monkeypatch.setattr(daemon.store, "commit_api_reset", account_gone_first)
            with pytest.raises(StoreError, match="no account"):
                await reset_call(daemon, HOTLINE, _call())
            assert rows(daemon.store, "SELECT id FROM inbound_messages") == []
            assert daemon.senders.try_hold(PHONE)


async def test_a_caller_who_hangs_up_before_the_commit_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its password is being hashed: no row, no password
    change, nothing counted, and the number is free again."""
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            hashing = trio.Event()

            async def slow_hash(password: str) -> tuple[str, float]:
                hashing.set()
                await trio.sleep_forever()
                raise AssertionError("unreachable")

            monkeypatch.setattr(daemon.hashing, "hash", slow_hash)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reset_call, daemon, HOTLINE, _call())
                    await hashing.wait()
                    scope.cancel()
            assert rows(daemon.store, "SELECT count(*) FROM inbound_messages") == [(0,)]
            assert _account(daemon) == (None, False)
            assert daemon.senders.try_hold(PHONE)


async def test_a_caller_who_hangs_up_during_the_commit_leaves_it_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its transaction runs: the reset is committed anyway
    (a database thread is never abandoned), so it is logged too, and the
    number is free again."""
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            commit = daemon.store.commit_api_reset
            started = threading.Event()

            def slow_commit(*args: Any, **kwargs: Any) -> int:
                started.set()
                time.sleep(0.3)
                return commit(*args, **kwargs)

            monkeypatch.setattr(daemon.store, "commit_api_reset", slow_commit)
            with capture_logs() as logs, trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reset_call, daemon, HOTLINE, _call())
                    await trio.to_thread.run_sync(started.wait)
                    scope.cancel()
            (call,) = _calls(daemon)
            assert call["outcome"] == "reset_ok"
            assert [(e["event"], e["call_id"]) for e in logs] == [("api_reset_decided", call["id"])]
            assert daemon.senders.try_hold(PHONE)


async def test_a_client_without_the_scope_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_state(tmp_path) as daemon:
            sender = ApiClient(id=2, name="portal", scopes=frozenset({"messages"}))
            with pytest.raises(PermissionError):
                await reset_call(daemon, sender, _call())
            assert _calls(daemon) == []


# --- end to end: smscd run, its API and the simulator -----------------------------


def _api_config(port: int) -> str:
    return f"""
[api]
listen = "127.0.0.1:{port}"
default_route = "sim"
"""


def _clients_add(daemon: DaemonProcess, name: str, scopes: str) -> str:
    """``smscd clients add``; the token it printed."""
    done = subprocess.run(
        [*SMSCD, "-c", str(daemon.config), "clients", "add", name, "--scopes", scopes],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


async def _reset(
    http: httpx.AsyncClient, token: str | None, body: object
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    with trio.fail_after(10):
        response = await http.post("/v1/resets", content=json.dumps(body), headers=headers)
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


def _password_hash(daemon: DaemonProcess) -> tuple[object, ...]:
    ((password_hash, must_change),) = daemon.query(
        "SELECT password_hash, must_change FROM accounts WHERE bhxh_code = ?", (CODE,)
    )
    return password_hash, bool(must_change)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: SQLite in the test's directory; else a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield None
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    schemas = PgSchemas(base)
    try:
        yield schemas.new()
    finally:
        schemas.drop_all()


@pytest.mark.slow
async def test_api_resets_and_8079_mos_share_the_daily_limit(
    tmp_path: Path, database_url: str | None
) -> None:
    """Limit 3 a day: a reset by API, one by SMS, one by API again; then the
    MO gets the rate-limited reply and the API the rate_limited outcome. Each
    API reset's password verifies against the stored argon2id hash; nothing
    holds it but the answer."""
    port = free_port()
    with trio.fail_after(90):
        async with open_daemon(
            tmp_path, extra=_api_config(port), database_url=database_url
        ) as daemon:
            token = await trio.to_thread.run_sync(_clients_add, daemon, "hotline", "resets")
            body = {"msisdn": "0327000686", "bhxh_code": CODE, "channel": "hotline"}
            passwords: list[str] = []
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                status, answer = await _reset(http, token, body)
                assert (status, sorted(answer)) == (200, ["id", "outcome", "password"])
                assert answer["outcome"] == "reset_ok"
                assert re.fullmatch(r"\d{6}", answer["password"])
                passwords.append(answer["password"])
                stored, must_change = _password_hash(daemon)
                assert isinstance(stored, str)
                assert argon2.PasswordHasher().verify(stored, answer["password"])
                assert must_change

                # The same phone by SMS: its reset is the day's second.
                sms = await reply_for(daemon, "84327000686", f"BH MK {CODE}")
                match = OK.match(sms)
                assert match
                passwords.append(match.group(1).decode())

                status, answer = await _reset(http, token, {**body, "channel": "app"})
                assert (status, answer["outcome"]) == (200, "reset_ok")
                passwords.append(answer["password"])
                stored, _must_change = _password_hash(daemon)
                assert isinstance(stored, str)
                assert argon2.PasswordHasher().verify(stored, answer["password"])

                # Three today, across the channels: both are refused now.
                assert await reply_for(daemon, "84327000686", f"bh mk {CODE}") == RATE_LIMITED
                status, answer = await _reset(http, token, body)
                assert (status, answer) == (200, {"id": answer["id"], "outcome": "rate_limited"})
                assert _password_hash(daemon)[0] == stored

            # Every one recorded, by channel; the API's with their client.
            assert daemon.query("SELECT DISTINCT msisdn, state FROM inbound_messages") == [
                ("84327000686", "decided")
            ]
            calls = daemon.query(
                "SELECT channel, carrier, destination_addr, text, outcome,"
                " CASE WHEN client_id IS NULL THEN 0 ELSE 1 END FROM inbound_messages ORDER BY id"
            )
            text = f"BH MK {CODE}"
            assert calls == [
                ("hotline", "api", "api", text, "reset_ok", 1),
                ("sms", "sim", "8079", text, "reset_ok", 0),
                ("app", "api", "api", text, "reset_ok", 1),
                ("sms", "sim", "8079", f"bh mk {CODE}", "rate_limited", 0),
                ("hotline", "api", "api", text, "rate_limited", 1),
            ]
            # Replies and charges are the MOs' alone.
            assert daemon.query(
                "SELECT i.channel, count(*) FROM outbound_messages o"
                " JOIN inbound_messages i ON i.id = o.inbound_id GROUP BY i.channel"
            ) == [("sms", 2)]
            assert daemon.query(
                "SELECT i.channel, count(*) FROM charges c"
                " JOIN inbound_messages i ON i.id = c.inbound_id GROUP BY i.channel"
            ) == [("sms", 2)]
            status, metrics = await http_get(daemon.metrics_port, "/metrics")
            assert status == 200
            assert sorted(
                line
                for line in metrics.decode().splitlines()
                if line.startswith("smscd_api_resets_total{")
            ) == [
                'smscd_api_resets_total{channel="app",outcome="reset_ok"} 1.0',
                'smscd_api_resets_total{channel="hotline",outcome="rate_limited"} 1.0',
                'smscd_api_resets_total{channel="hotline",outcome="reset_ok"} 1.0',
            ]
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
    log_text = daemon.log_text()
    api_lines = [
        json.loads(line) for line in log_text.splitlines() if '"api_reset_decided"' in line
    ]
    assert [(line["channel"], line["outcome"], line["msisdn"]) for line in api_lines] == [
        ("hotline", "reset_ok", "0327xxx686"),
        ("app", "reset_ok", "0327xxx686"),
        ("hotline", "rate_limited", "0327xxx686"),
    ]
    requests = [json.loads(line) for line in log_text.splitlines() if '"api_request"' in line]
    assert [(r["route"], r["status"], r["msisdn"]) for r in requests] == [
        ("resets", 200, "0327xxx686")
    ] * 3
    for password in passwords[::2]:  # the API's: never in a log line
        assert re.search(rf"(?<![0-9.]){password}(?![0-9])", log_text) is None
    assert "0327000686" not in log_text
    assert token not in log_text
    if database_url is None:
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("smscd.db*"))
        for password in passwords[::2]:
            assert re.search(rb"(?<![0-9.])" + password.encode() + rb"(?![0-9])", raw) is None


@pytest.mark.slow
async def test_refusals_change_nothing_and_bad_requests_are_not_recorded(tmp_path: Path) -> None:
    port = free_port()
    with trio.fail_after(90):
        async with open_daemon(tmp_path, extra=_api_config(port)) as daemon:
            hotline = await trio.to_thread.run_sync(_clients_add, daemon, "hotline", "resets")
            sender = await trio.to_thread.run_sync(_clients_add, daemon, "portal", "messages")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                refused = [
                    # Another phone than the registered one.
                    {"msisdn": "0912345678", "bhxh_code": CODE, "channel": "hotline"},
                    # The registered phone, not registered for e-transactions.
                    {"msisdn": "0912345678", "bhxh_code": "0101010101", "channel": "hotline"},
                    # A code that does not exist.
                    {"msisdn": "0327000686", "bhxh_code": "9999999999", "channel": "hotline"},
                ]
                for body in refused:
                    status, answer = await _reset(http, hotline, body)
                    assert (status, answer) == (200, {"id": answer["id"], "outcome": "mismatch"})
                status, answer = await _reset(
                    http,
                    hotline,
                    {"msisdn": "0327000686", "bhxh_code": "12345", "channel": "portal"},
                )
                assert (status, answer) == (200, {"id": answer["id"], "outcome": "invalid_code"})
                good = {"msisdn": "0327000686", "bhxh_code": CODE, "channel": "hotline"}
                bad = [
                    (None, good, 401, "unauthorized"),
                    (sender, good, 403, "forbidden"),
                    (hotline, {**good, "msisdn": "0241234567"}, 400, "invalid_field"),
                    (hotline, {**good, "channel": "sms"}, 400, "invalid_field"),
                    (hotline, {"msisdn": "0327000686", "channel": "hotline"}, 400, "missing_field"),
                ]
                for token, body, code, error in bad:
                    status, answer = await _reset(http, token, body)
                    assert (status, answer["error"]) == (code, error)
            assert daemon.query(
                "SELECT channel, msisdn, text, outcome, bhxh_code FROM inbound_messages ORDER BY id"
            ) == [
                ("hotline", "84912345678", f"BH MK {CODE}", "mismatch", CODE),
                ("hotline", "84912345678", "BH MK 0101010101", "mismatch", "0101010101"),
                ("hotline", "84327000686", "BH MK 9999999999", "mismatch", "9999999999"),
                ("portal", "84327000686", "BH MK 12345", "invalid_code", None),
            ]
            assert daemon.query(
                "SELECT count(*) FROM accounts WHERE password_hash IS NOT NULL"
            ) == [(0,)]
            assert daemon.query("SELECT count(*) FROM outbound_messages") == [(0,)]
            assert daemon.query("SELECT count(*) FROM charges") == [(0,)]
            assert daemon.sim.submitted == []
