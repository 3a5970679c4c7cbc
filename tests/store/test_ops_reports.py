from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from smscd.ops import reports
from smscd.reset import ChargingMode, Outcome
from smscd.store.types import NewReceipt
from tests.store.helpers import T0, add_mo, decision, new_mo

if TYPE_CHECKING:
    from smscd.store.sql import SqlStore

CHARGES_CSV = (
    "date,carrier,channel,mo_received,charged,amount_vnd,pending,void\n"
    "2024-11-20,viettel,sms,1,0,0,1,0\n"
    "2024-11-21,mobifone,sms,1,0,0,0,1\n"
    "2024-11-21,viettel,sms,2,1,1000,0,0\n"
    "2024-11-22,mobifone,sms,1,1,1000,0,0\n"
)
RECEIPTS_CSV = (
    "date,carrier,accepted,delivered,failed,pending\n"
    "2024-11-20,viettel,1,0,0,1\n"
    "2024-11-21,mobifone,0,0,1,0\n"
    "2024-11-21,viettel,1,1,0,0\n"
    "2024-11-22,mobifone,1,0,1,0\n"
)
CHARGES_TABLE = """\
date        carrier   channel  mo_received  charged  amount_vnd  pending  void
----------  --------  -------  -----------  -------  ----------  -------  ----
2024-11-20  viettel   sms                1        0           0        1     0
2024-11-21  mobifone  sms                1        0           0        0     1
2024-11-21  viettel   sms                2        1       1,000        0     0
2024-11-22  mobifone  sms                1        1       1,000        0     0
----------  --------  -------  -----------  -------  ----------  -------  ----
total                                    5        2       2,000        1     1
"""


def _receipt(message_id: str, stat: str, at: datetime) -> NewReceipt:
    return NewReceipt(
        carrier="viettel" if message_id == "a" else "mobifone",
        message_id=message_id,
        id_keys=frozenset({message_id}),
        stat=stat,
        err="000",
        final=True,
        received_at=at,
    )


@pytest.fixture
def filled(store: SqlStore) -> SqlStore:
    """Two carriers over three Vietnam days (UTC+7: 17:30 UTC is the next day)."""
    nov20_1730 = datetime(2024, 11, 20, 17, 30, tzinfo=T0.tzinfo)
    # a: local 2024-11-21 00:30, MO charge, delivered
    a = add_mo(store, at=nov20_1730, text="a")
    oid = store.commit_decision(decision(a, outcome=Outcome.MISMATCH))
    store.mark_accepted(oid, message_id="a", id_keys=frozenset({"a"}), now=nov20_1730)
    store.record_receipt(_receipt("a", "DELIVRD", nov20_1730 + timedelta(seconds=5)))
    # a redelivery of a: not counted
    store.store_inbound(
        [new_mo(at=nov20_1730 + timedelta(seconds=30), text="a")], duplicate_window_s=120
    )
    # b: local 2024-11-20 23:30, MT charge pending, accepted without receipt
    b = add_mo(store, at=nov20_1730 - timedelta(hours=1), text="b")
    bid = store.commit_decision(decision(b, outcome=Outcome.MISMATCH, charging=ChargingMode.MT))
    store.mark_accepted(bid, message_id="b", id_keys=frozenset({"b"}), now=T0)
    # c: 2024-11-21, mobifone, MT charge voided by a rejected submit
    c = add_mo(store, at=T0, text="c", carrier="mobifone")
    cid = store.commit_decision(decision(c, outcome=Outcome.MISMATCH, charging=ChargingMode.MT))
    store.mark_failed(cid, status=0x45, now=T0)
    # e: 2024-11-21, not decided yet
    add_mo(store, at=T0, text="e")
    # f: 2024-11-22, mobifone, MO charge, undeliverable
    f = add_mo(store, at=T0 + timedelta(days=1), text="f", carrier="mobifone")
    fid = store.commit_decision(decision(f, outcome=Outcome.MISMATCH))
    store.mark_accepted(fid, message_id="f", id_keys=frozenset({"f"}), now=T0)
    store.record_receipt(_receipt("f", "UNDELIV", T0 + timedelta(days=1)))
    return store


def _run(
    report: str, url: str, fmt: reports.Format, start: date | None = None, end: date | None = None
) -> str:
    out = io.StringIO()
    fn = reports.charges if report == "charges" else reports.receipts
    assert fn(url, start=start, end=end, fmt=fmt, out=out) == 0
    return out.getvalue()


def test_charges_csv_exact_bytes(filled: SqlStore, db_url: str) -> None:
    assert _run("charges", db_url, "csv") == CHARGES_CSV


def test_receipts_csv_exact_bytes(filled: SqlStore, db_url: str) -> None:
    assert _run("receipts", db_url, "csv") == RECEIPTS_CSV


def test_inclusive_date_range(filled: SqlStore, db_url: str) -> None:
    day = date(2024, 11, 21)
    assert _run("charges", db_url, "csv", day, day) == (
        "date,carrier,channel,mo_received,charged,amount_vnd,pending,void\n"
        "2024-11-21,mobifone,sms,1,0,0,0,1\n"
        "2024-11-21,viettel,sms,2,1,1000,0,0\n"
    )
    assert _run("receipts", db_url, "csv", date(2024, 11, 22), None) == (
        "date,carrier,accepted,delivered,failed,pending\n2024-11-22,mobifone,1,0,1,0\n"
    )
    assert _run("charges", db_url, "csv", date(2025, 1, 1), None) == (
        "date,carrier,channel,mo_received,charged,amount_vnd,pending,void\n"
    )


def test_json(filled: SqlStore, db_url: str) -> None:
    data = json.loads(_run("charges", db_url, "json"))
    assert data[2] == {
        "date": "2024-11-21",
        "carrier": "viettel",
        "channel": "sms",
        "mo_received": 2,
        "charged": 1,
        "amount_vnd": 1000,
        "pending": 0,
        "void": 0,
    }
    assert len(data) == 4
    assert json.loads(_run("receipts", db_url, "json", date(2030, 1, 1))) == []


def test_table_with_total(filled: SqlStore, db_url: str) -> None:
    assert _run("charges", db_url, "table") == CHARGES_TABLE
    assert _run("receipts", db_url, "table").splitlines()[-1].split() == [
        "total",
        "3",
        "1",
        "2",
        "1",
    ]


def test_reversed_range_is_refused(store: SqlStore, db_url: str) -> None:
    out = io.StringIO()
    code = reports.charges(
        db_url, start=date(2024, 11, 2), end=date(2024, 11, 1), fmt="csv", out=out
    )
    assert code == 2
    assert out.getvalue() == "error: --from 2024-11-02 is after --to 2024-11-01\n"
