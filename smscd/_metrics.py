"""Prometheus metrics of the daemon, in a registry of its own (no process-global
state, so tests can run several daemons in one interpreter)."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@attrs.define(eq=False)
class Metrics:
    registry: CollectorRegistry = attrs.field(factory=_registry)
    mo: Counter = attrs.field(init=False)
    mt: Counter = attrs.field(init=False)
    receipts: Counter = attrs.field(init=False)
    charges: Counter = attrs.field(init=False)
    outbox_depth: Gauge = attrs.field(init=False)
    window_in_use: Gauge = attrs.field(init=False)
    link_up: Gauge = attrs.field(init=False)
    hash_cpu: Summary = attrs.field(init=False)
    poison: Counter = attrs.field(init=False)
    inbound_held: Gauge = attrs.field(init=False)
    inbound_paused: Gauge = attrs.field(init=False)
    api_requests: Counter = attrs.field(init=False)
    api_resets: Counter = attrs.field(init=False)
    wal_pages: Gauge = attrs.field(init=False)
    wal_restarts: Counter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        r = self.registry
        self.mo = Counter(
            "smscd_mo", "MOs by carrier and outcome", ["carrier", "outcome"], registry=r
        )
        self.mt = Counter(
            "smscd_mt", "MT submit verdicts by carrier and state", ["carrier", "state"], registry=r
        )
        self.receipts = Counter(
            "smscd_receipts",
            "Delivery receipts by carrier and stat",
            ["carrier", "stat"],
            registry=r,
        )
        self.charges = Counter(
            "smscd_charges_vnd", "Charges recorded, in VND", ["carrier"], registry=r
        )
        self.outbox_depth = Gauge("smscd_outbox_depth", "Queued replies", ["carrier"], registry=r)
        self.window_in_use = Gauge(
            "smscd_window_in_use", "Requests in flight", ["carrier"], registry=r
        )
        self.link_up = Gauge("smscd_link_bound", "1 when the bind is up", ["carrier"], registry=r)
        self.poison = Counter(
            "smscd_poison",
            "Items whose processing failed on their own data, quarantined or refused, by stage",
            ["stage"],
            registry=r,
        )
        self.inbound_held = Gauge(
            "smscd_inbound_held",
            "MOs and receipts read and not yet answered ([[smsc]] max_unacked at most)",
            ["carrier"],
            registry=r,
        )
        self.inbound_paused = Gauge(
            "smscd_inbound_paused",
            "Times the link stopped reading because max_unacked were held",
            ["carrier"],
            registry=r,
        )
        self.api_requests = Counter(
            "smscd_api_requests",
            "HTTP API requests by route and status code",
            ["route", "status"],
            registry=r,
        )
        self.api_resets = Counter(
            "smscd_api_resets",
            "POST /v1/resets calls decided, by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.wal_pages = Gauge(
            "smscd_sqlite_wal_pages",
            "Pages in SQLite's WAL at the last background checkpoint",
            registry=r,
        )
        self.wal_restarts = Counter(
            "smscd_sqlite_wal_restarts",
            "Times the WAL passed its cap and was copied and restarted under the write lock",
            registry=r,
        )
        self.hash_cpu = Summary(
            "smscd_password_hash_cpu_seconds",
            "CPU time of the hashing process per new password (argon2id)",
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition Prometheus scrapes (``/metrics``)."""
        return generate_latest(self.registry)

    def totals(self) -> dict[tuple[str, str], float]:
        """The counters the status page charts, summed over carriers:
        ``("mo", outcome)``, ``("mt", state)`` and ``("receipts", stat)``."""
        totals: dict[tuple[str, str], float] = {}
        for family, counter, label in (
            ("mo", self.mo, "outcome"),
            ("mt", self.mt, "state"),
            ("receipts", self.receipts, "stat"),
        ):
            for metric in counter.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        key = (family, sample.labels[label])
                        totals[key] = totals.get(key, 0.0) + sample.value
        return totals
