"""The status page's values: the last hour from counters, the last warnings
from the log, the binds as the page shows them, the JSON and the table."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta

import attrs
import pytest
import structlog

from smscd.link import Link, LinkConfig, LinkStatistics
from smscd.logging import configure_logging, flush_logs
from smscd.web import (
    DayActivity,
    EventLog,
    MinuteHistory,
    QueueStatus,
    StatusBoard,
    StoreStatus,
    render_status,
)
from smscd.web._charts import daily_charts
from smscd.web._snapshot import bind_status

NOW = datetime(2024, 11, 21, 3, 30, 20, tzinfo=UTC)  # 10:30 in Vietnam
T = NOW.timestamp()


def link_stats(**changes: object) -> LinkStatistics:
    """A link's statistics (of a real Link, not started), changed as given."""
    config = LinkConfig(
        name="viettel", host="127.0.0.1", port=2775, system_id="smscd", password="pw", window=10
    )
    base = attrs.evolve(
        Link(config).statistics(), bound=True, state="bound", state_age=90.0, in_flight=3
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


# --- the last hour ------------------------------------------------------------------


def test_history_puts_what_each_counter_grew_in_its_minute() -> None:
    history = MinuteHistory()
    # The first observation counts from zero: the counters start with the daemon.
    history.observe(T - 120, {("mo", "reset_ok"): 2.0})
    history.observe(T - 61, {("mo", "reset_ok"): 2.0, ("mo", "mismatch"): 1.0})
    history.observe(T, {("mo", "reset_ok"): 7.0, ("mo", "mismatch"): 1.0, ("mt", "accepted"): 4})
    chart = history.chart(
        "mo",
        T,
        key="mo",
        title="MOs",
        unit="MOs",
        series=[("reset_ok", "reset"), ("mismatch", "mismatch"), ("duplicate", "duplicate")],
    )
    assert len(chart.starts) == 60
    assert chart.starts[-1] == "2024-11-21T03:30:00Z"
    assert chart.starts[0] == "2024-11-21T02:31:00Z"
    values = {s.name: s.values for s in chart.series}
    assert values["reset_ok"][-3:] == (2, 0, 5)
    assert values["mismatch"][-3:] == (0, 1, 0)
    assert values["duplicate"] == (0,) * 60  # always listed, in the given order
    assert [s.label for s in chart.series] == ["reset", "mismatch", "duplicate"]


def test_history_forgets_minutes_older_than_an_hour_and_lists_other_names() -> None:
    history = MinuteHistory()
    history.observe(T - 3600, {("receipts", "EXPIRED"): 1.0})
    history.observe(T - 30, {("receipts", "EXPIRED"): 1.0, ("receipts", "UNDELIV"): 2.0})
    history.observe(T, {("receipts", "EXPIRED"): 1.0, ("receipts", "UNDELIV"): 2.0})
    chart = history.chart(
        "receipts",
        T,
        key="receipts",
        title="Receipts",
        unit="receipts",
        series=[("DELIVRD", "DELIVRD")],
        others=True,
    )
    # EXPIRED's minute is 60 minutes back: out of the hour, and not listed.
    assert {s.name: sum(s.values) for s in chart.series} == {"DELIVRD": 0, "UNDELIV": 2}


# --- warnings and errors --------------------------------------------------------------


def test_event_log_keeps_warnings_masked_with_short_details_only() -> None:
    out = io.StringIO()
    events = EventLog(size=3)
    configure_logging(format="json", level="info", stream=out, sink=events)
    log = structlog.get_logger("test")
    log.info("mo_received", carrier="viettel", msisdn="84327000686")
    log.warning(
        "mt_rejected",
        carrier="viettel",
        msisdn="84327000686",  # raw: masked by the processor before the sink
        status="0x0000000b",
        text="BH MK 0123456789",
        body="Mat khau: 482913",
        password="secret",
    )
    log.error("store_failed", error="database error: code 0123456789 phone 84327000686")
    flush_logs()
    recent = events.recent()
    assert [r.event for r in recent] == ["store_failed", "mt_rejected"]
    rejected = recent[1]
    assert (rejected.level, rejected.carrier, rejected.msisdn, rejected.detail) == (
        "warning",
        "viettel",
        "0327xxx686",
        "status=0x0000000b",
    )
    assert rejected.at.endswith("Z")
    # Free text is cut to what names the error; long numbers are scrubbed.
    assert recent[0].detail == "error=database error: code … phone …"
    assert recent[0].carrier is None
    assert events.last_for("viettel") == rejected
    kept = json.dumps([attrs.asdict(r) for r in recent])
    for secret in ("482913", "BH MK", "secret", "0123456789", "84327000686", "0327000686"):
        assert secret not in kept
    # The log itself is unchanged by the sink.
    line = json.loads(out.getvalue().splitlines()[1])
    assert line["msisdn"] == "0327xxx686" and line["event"] == "mt_rejected"


def test_event_log_is_bounded_and_keeps_each_carriers_last_error() -> None:
    events = EventLog(size=3)
    events.record({"event": "bind_failed", "carrier": "mobifone", "timestamp": "t0"}, "warning")
    for i in range(5):
        events.record({"event": f"e{i}", "carrier": "viettel", "timestamp": f"t{i}"}, "error")
    assert [r.event for r in events.recent()] == ["e4", "e3", "e2"]
    mobifone = events.last_for("mobifone")
    assert mobifone is not None and mobifone.event == "bind_failed"
    assert events.last_for("vinaphone") is None


def test_a_phone_that_is_not_masked_is_not_kept() -> None:
    events = EventLog()
    events(None, "warning", {"event": "x", "msisdn": 84327000686, "source_addr": "84327000686"})
    assert events.recent()[0].msisdn is None


# --- binds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "state", "age"),
    [
        ({}, "bound", 90.0),
        ({"throttled_ago": 3.0}, "throttled", 3.0),
        ({"throttled_ago": 60.0}, "bound", 90.0),
        ({"bound": False, "state": "backing_off", "state_age": 4.0}, "reconnecting", 4.0),
        ({"bound": False, "state": "binding", "state_age": 4.0}, "reconnecting", 4.0),
        ({"bound": False, "state": "stopping"}, "stopping", 90.0),
    ],
)
def test_bind_state_as_the_page_shows_it(
    changes: dict[str, object], state: str, age: float
) -> None:
    bind = bind_status(link_stats(**changes), now=NOW, reconnects_today=2, last_error=None)
    assert (bind.state, bind.since) == (state, NOW - timedelta(seconds=age))
    assert (bind.in_flight, bind.window, bind.submit_cap, bind.reconnects_today) == (3, 10, 50, 2)


def test_reconnects_today_count_the_binds_lost_since_vietnam_midnight() -> None:
    board = StatusBoard()
    store = StoreStatus(ok=True)
    queues = QueueStatus(outbox_depth=0, outbox_oldest_s=None, hashing_queue=0, intake_backlog=0)

    def reconnects(at: datetime, disconnects: int) -> int:
        snapshot = board.snapshot(
            now=at,
            totals={},
            links=[link_stats(disconnects=disconnects)],
            queues=queues,
            store=store,
        )
        return snapshot.binds[0].reconnects_today

    evening = datetime(2024, 11, 21, 16, 0, tzinfo=UTC)  # 23:00 in Vietnam
    assert reconnects(evening, 2) == 2
    assert reconnects(evening + timedelta(minutes=59), 3) == 3
    assert reconnects(evening + timedelta(hours=1, minutes=1), 3) == 0  # a new day
    assert reconnects(evening + timedelta(hours=2), 5) == 2


# --- the 30 days and the JSON ---------------------------------------------------------


def test_the_30_days_are_read_whole_hourly_and_their_last_two_days_each_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("smscd.web._status.time.monotonic", lambda: clock[0])
    board = StatusBoard()
    today = date(2024, 11, 21)

    def day(n: int, resets: int) -> DayActivity:
        return DayActivity(
            day=today - timedelta(days=n), carrier="viettel", resets=resets, charges_vnd=0
        )

    def resets() -> dict[str, int]:
        """The resets chart of a snapshot: its days with resets."""
        chart = board.snapshot(
            now=NOW,
            totals={},
            links=[],
            queues=QueueStatus(
                outbox_depth=0, outbox_oldest_s=None, hashing_queue=0, intake_backlog=0
            ),
            store=StoreStatus(ok=True),
        ).charts[3]
        assert chart.key == "resets_daily"
        (viettel,) = chart.series
        return {start: n for start, n in zip(chart.starts, viettel.values, strict=True) if n}

    assert board.daily_turn(NOW) == today - timedelta(days=29)
    board.set_daily(today - timedelta(days=29), [day(20, 1), day(1, 2), day(0, 3)])
    assert board.daily_turn(NOW) is None  # within the minute
    clock[0] += 60
    assert board.daily_turn(NOW) == today - timedelta(days=1)
    board.set_daily(today - timedelta(days=1), [day(1, 5), day(0, 6)])  # a late change
    assert resets() == {"2024-11-01": 1, "2024-11-20": 5, "2024-11-21": 6}
    clock[0] += 60
    assert board.daily_turn(NOW) == today - timedelta(days=1)  # that read failed: no set_daily
    clock[0] += 3600
    assert board.daily_turn(NOW) == today - timedelta(days=29)
    board.set_daily(today - timedelta(days=29), [day(0, 7)])
    assert resets() == {"2024-11-21": 7}


def test_daily_charts_cover_30_days_per_carrier() -> None:
    today = date(2024, 11, 21)
    rows = [
        DayActivity(day=today, carrier="viettel", resets=4, charges_vnd=9000),
        DayActivity(day=today - timedelta(days=29), carrier="gmobile", resets=1, charges_vnd=1000),
        DayActivity(day=today - timedelta(days=30), carrier="viettel", resets=9, charges_vnd=1),
    ]
    resets, charges = daily_charts(rows, today=today, carriers=["viettel", "mobifone"])
    assert resets.starts[0] == "2024-10-23" and resets.starts[-1] == "2024-11-21"
    assert {s.name: sum(s.values) for s in resets.series} == {
        "viettel": 4,
        "mobifone": 0,
        "gmobile": 1,
    }
    assert charges.series[0].values[-1] == 9000 and charges.unit == "VND"


def test_snapshot_json_and_its_table() -> None:
    board = StatusBoard()
    board.history.observe(T - 5, {("mo", "bad_syntax"): 2.0, ("mt", "accepted"): 2.0})
    start = board.daily_turn(NOW)
    assert start == date(2024, 10, 23)  # the first read: all 30 days
    board.set_daily(
        start, [DayActivity(day=date(2024, 11, 21), carrier="viettel", resets=1, charges_vnd=3000)]
    )
    board.events.record(
        {"event": "link_disconnected", "carrier": "viettel", "timestamp": "2024-11-21T03:29:00Z"},
        "warning",
    )
    snapshot = board.snapshot(
        now=NOW,
        totals={("mo", "bad_syntax"): 2.0, ("mt", "accepted"): 2.0},
        links=[link_stats(), link_stats(name="mobifone", bound=False, state="connecting")],
        queues=QueueStatus(outbox_depth=5, outbox_oldest_s=12.4, hashing_queue=1, intake_backlog=0),
        store=StoreStatus(ok=True),
    )
    document = json.loads(json.dumps(snapshot.to_json()))
    assert document["healthy"] is False  # mobifone is not bound
    assert document["generated_at"] == "2024-11-21T03:30:20Z"
    viettel, mobifone = document["binds"]
    assert viettel == {
        "carrier": "viettel",
        "state": "bound",
        "since": "2024-11-21T03:28:50Z",
        "reconnects_today": 0,
        "in_flight": 3,
        "window": 10,
        "submit_cap": 50.0,
        "last_error": {
            "at": "2024-11-21T03:29:00Z",
            "level": "warning",
            "event": "link_disconnected",
            "carrier": "viettel",
            "msisdn": None,
            "detail": None,
        },
    }
    assert mobifone["state"] == "reconnecting"
    assert [c["key"] for c in document["charts"]] == [
        "mo",
        "replies",
        "receipts",
        "resets_daily",
        "charges_daily",
    ]
    mo = document["charts"][0]
    assert {s["name"]: sum(s["values"]) for s in mo["series"]}["bad_syntax"] == 2

    text = render_status(document)
    lines = text.splitlines()
    assert lines[0] == "smscd status at 2024-11-21T03:30:20Z: NOT HEALTHY"
    assert lines[2].split() == [
        "carrier",
        "state",
        "since",
        "reconnects",
        "today",
        "window",
        "submit",
        "cap",
        "last",
        "error",
    ]
    assert lines[4].split() == [
        "viettel",
        "bound",
        "2024-11-21T03:28:50Z",
        "0",
        "3/10",
        "50/s",
        "link_disconnected",
        "at",
        "2024-11-21T03:29:00Z",
    ]
    assert lines[5].split()[:2] == ["mobifone", "reconnecting"]
    assert "outbox          5 queued, the oldest 12 s old" in lines
    assert "store           ok" in lines
    assert "MOs by outcome, last hour: reset 0, mismatch 0, invalid code 0, help 2," in text
    assert "Charges per day, by carrier (VND), last 30 days: viettel 3,000, mobifone 0" in text
