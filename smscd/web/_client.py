"""``smscd status``: fetch a running daemon's ``/status.json`` and print it
for a terminal.

The command is a monitoring check as much as a view: the caller exits 0 only
when the document says every bind is up and the store answers.
"""

from __future__ import annotations

import http.client
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["StatusUnavailable", "fetch_status", "render_status"]

#: The page's last-hour charts, summed over the hour by render_status.
_HOUR_CHARTS = ("mo", "replies", "receipts")
_DAILY_CHARTS = ("resets_daily", "charges_daily")
EVENTS_SHOWN = 10


class StatusUnavailable(Exception):
    """No status document: the daemon did not answer, refused, or answered
    something else. The message is one line for the operator."""


def _connect_host(host: str) -> str:
    """Where to reach a daemon listening on ``host``: a wildcard listen is
    reached on loopback."""
    name = host.strip("[]")
    if name in ("", "0.0.0.0"):  # noqa: S104 - a wildcard we connect to, not bind
        return "127.0.0.1"
    if name == "::":
        return "::1"
    return name


def fetch_status(listen: str, *, token: str | None, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``/status.json`` from the daemon listening on ``listen`` (``HOST:PORT``)."""
    host, _, port = listen.rpartition(":")
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/status.json"
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(_connect_host(host), int(port), timeout=timeout)
    try:
        connection.request("GET", "/status.json", headers=headers)
        response = connection.getresponse()
        body = response.read()
    except TimeoutError:
        raise StatusUnavailable(f"no answer from {url} within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise StatusUnavailable(f"no daemon answers at {url} ({reason})") from None
    finally:
        connection.close()
    if response.status != 200:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "?"
        hint = (
            ": it wants [metrics] token_file or token_credential" if response.status == 401 else ""
        )
        raise StatusUnavailable(f"{url} answered {response.status} {phrase}{hint}")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("binds"), list):
        raise StatusUnavailable(f"{url} answered with something else than smscd's status")
    return document


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _totals(chart: Mapping[str, Any]) -> str:
    parts = [f"{s['label']} {sum(s['values']):,}" for s in chart["series"]]
    return ", ".join(parts) if parts else "-"


def render_status(document: Mapping[str, Any]) -> str:
    """The status document as text for a terminal."""
    verdict = "healthy" if document.get("healthy") else "NOT HEALTHY"
    lines = [f"smscd status at {document['generated_at']}: {verdict}", ""]
    rows = []
    for bind in document["binds"]:
        error = bind.get("last_error")
        cap = bind["submit_cap"]
        rows.append(
            [
                bind["carrier"],
                bind["state"],
                bind["since"],
                str(bind["reconnects_today"]),
                f"{bind['in_flight']}/{bind['window']}",
                f"{cap:g}/s" if cap else "none",
                f"{error['event']} at {error['at']}" if error else "-",
            ]
        )
    header = ["carrier", "state", "since", "reconnects today", "window", "submit cap"]
    lines += _table([*header, "last error"], rows) if rows else ["(no binds)"]
    queues = document["queues"]
    oldest = queues["outbox_oldest_s"]
    store = document["store"]
    lines += [
        "",
        f"outbox          {queues['outbox_depth']:,} queued"
        + (f", the oldest {oldest:.0f} s old" if oldest is not None else ""),
        f"hashing queue   {queues['hashing_queue']:,}",
        f"intake backlog  {queues['intake_backlog']:,}",
        "store           " + ("ok" if store["ok"] else f"NOT ANSWERING: {store['error']}"),
    ]
    charts = {chart["key"]: chart for chart in document.get("charts", [])}
    lines.append("")
    for key in (*_HOUR_CHARTS, *_DAILY_CHARTS):
        chart = charts.get(key)
        if chart is not None:
            span = "last hour" if chart["step"] == "minute" else f"last {len(chart['starts'])} days"
            lines.append(f"{chart['title']}, {span}: {_totals(chart)}")
    events = document.get("events", [])
    lines += ["", f"warnings and errors: {len(events)} kept"]
    for event in events[:EVENTS_SHOWN]:
        cells = [
            event["at"],
            event["level"],
            event["event"],
            event.get("carrier") or "-",
            event.get("msisdn") or "-",
            event.get("detail") or "",
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
