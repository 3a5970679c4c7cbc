"""The ``smscd`` command line: parses arguments and calls the one function that
does the work. Nothing here knows SMPP or SQL.

Exit codes: 0 ok, 1 the command ran and found a problem (bad rows, no account,
a daemon not healthy or not answering), 2 unusable input (bad config, bad
arguments, unmigrated database).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from smscd import __version__

if TYPE_CHECKING:
    from smscd.config import Config

__all__ = ["main"]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smscd",
        description="Carrier SMPP connector for the VssID password-reset shortcode 8079.",
    )
    parser.add_argument("--version", action="version", version=f"smscd {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="configuration file (default: $SMSCD_CONFIG or conf/smscd.toml)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="run the daemon in the foreground")
    status = commands.add_parser(
        "status",
        help="print the running daemon's status (exit 0 only when every bind is up"
        " and the store answers)",
    )
    status.add_argument("--json", action="store_true", help="print /status.json as it is")
    status.add_argument("--timeout", type=float, default=5.0, help=argparse.SUPPRESS)
    commands.add_parser(
        "check-config", help="validate and print the effective config (secrets masked)"
    )

    db = commands.add_parser("db", help="database schema and history")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="create or migrate the schema")
    prune = db_commands.add_parser("prune", help="delete message history past retention")
    prune.add_argument(
        "--retention-days", type=int, help="override [database] retention_days (>= 35)"
    )

    accounts = commands.add_parser("accounts", help="subscriber accounts")
    acc_commands = accounts.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    imp = acc_commands.add_parser(
        "import", help="upsert accounts from a CSV (header bhxh_code,phone,e_transaction)"
    )
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--skip-bad", action="store_true", help="import the good rows and list the bad ones"
    )
    imp.add_argument("--batch-size", type=int, default=10_000, help=argparse.SUPPRESS)
    show = acc_commands.add_parser("show", help="print one account, phone masked")
    show.add_argument("code")

    report = commands.add_parser("report", help="per day and carrier reports")
    report.add_argument("kind", choices=("charges", "receipts"))
    report.add_argument("--from", dest="start", type=_date, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="end", type=_date, metavar="YYYY-MM-DD")
    report.add_argument("--format", choices=("table", "csv", "json"), default="table")

    quarantine = commands.add_parser(
        "quarantine", help="MOs and replies set aside after a failure: list, retry, drop"
    )
    q_commands = quarantine.add_subparsers(
        dest="quarantine_command", required=True, metavar="ACTION"
    )
    q_list = q_commands.add_parser("list", help="what is in quarantine (exit 1 when anything is)")
    q_list.add_argument("--format", choices=("table", "json"), default="table")
    for action, text in (
        ("retry", "put one item back in the stream"),
        ("drop", "give one item up for good (a reply's body is masked)"),
    ):
        q_action = q_commands.add_parser(action, help=text)
        q_action.add_argument("kind", choices=("mo", "reply"))
        q_action.add_argument("id", type=int)

    clients = commands.add_parser("clients", help="the HTTP API's clients and their tokens")
    c_commands = clients.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    c_add = c_commands.add_parser("add", help="add a client and print its token once")
    c_add.add_argument("name")
    c_add.add_argument("--scopes", required=True, help="comma-separated: messages,resets")
    c_add.add_argument("--sender", help="sender id of its SMS: a brand name or a short code")
    c_add.add_argument("--sender-ton", type=int, help="TON of the sender (5 for a brand name)")
    c_add.add_argument("--sender-npi", type=int, help="NPI of the sender (0 for a brand name)")
    c_add.add_argument("--price", type=int, default=0, help="VND charged per SMS (default 0)")
    c_add.add_argument("--rate", type=float, default=10.0, help="requests per second (10)")
    c_add.add_argument("--callback-url", help="where final states of its SMS are POSTed")
    c_list = c_commands.add_parser("list", help="the clients (never their tokens)")
    c_list.add_argument("--format", choices=("table", "json"), default="table")
    c_revoke = c_commands.add_parser("revoke", help="end a client's token now")
    c_revoke.add_argument("name")

    commands.add_parser(
        "simulate",
        help="run the bundled SMSC simulator (smscd simulate --help)",
        add_help=False,
    )
    return parser


def main(
    argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr

    # `simulate` has its own sub-commands and options: hand it the rest verbatim.
    if "simulate" in args_list:
        index = args_list.index("simulate")
        if all(
            a.startswith("-") or args_list[i - 1] in ("-c", "--config")
            for i, a in enumerate(args_list[:index])
        ):
            from smscd.simulator import main as simulate_main

            return simulate_main(args_list[index + 1 :])

    args = build_parser().parse_args(args_list)

    from smscd.config import ConfigError, load_config, resolve_config_path

    try:
        config = load_config(resolve_config_path(args.config))
    except ConfigError as exc:
        print(f"smscd: {exc}", file=err)
        return 2

    if args.command == "check-config":
        from smscd.config import render_effective

        out.write(render_effective(config))
        for smsc in config.smscs:
            if smsc.credential_origin == "inline":
                print(
                    f"smscd: warning: smsc {smsc.name!r} has an inline password;"
                    " use password_file or password_credential",
                    file=err,
                )
        return 0

    if args.command == "run":
        from smscd.daemon import run

        return run(config)

    if args.command == "status":
        return _status(config, as_json=args.json, timeout=args.timeout, out=out, err=err)

    if args.command == "db":
        from smscd.ops import db as ops_db

        if args.db_command == "upgrade":
            return ops_db.upgrade(config.database_url, out, err)
        retention = (
            args.retention_days if args.retention_days is not None else config.retention_days
        )
        return ops_db.prune(
            config.database_url, retention_days=retention, now=datetime.now(UTC), out=out, err=err
        )

    if args.command == "accounts":
        from smscd.ops import accounts as ops_accounts
        from smscd.reset import canonical_msisdn, mask_msisdn

        if args.accounts_command == "import":
            return ops_accounts.import_csv(
                config.database_url,
                args.file,
                normalize_phone=canonical_msisdn,
                skip_bad=args.skip_bad,
                batch_size=args.batch_size,
                out=out,
                err=err,
            )
        return ops_accounts.show(config.database_url, args.code, out, mask=mask_msisdn, err=err)

    if args.command == "quarantine":
        from smscd.ops import quarantine as ops_quarantine
        from smscd.reset import mask_msisdn

        if args.quarantine_command == "list":
            return ops_quarantine.list_items(
                config.database_url, fmt=args.format, mask=mask_msisdn, out=out, err=err
            )
        act = ops_quarantine.retry if args.quarantine_command == "retry" else ops_quarantine.drop
        return act(config.database_url, args.kind, args.id, out=out, err=err)

    if args.command == "clients":
        from smscd.ops import clients as ops_clients

        if args.clients_command == "add":
            return ops_clients.add(
                config.database_url,
                args.name,
                scopes=args.scopes,
                sender=args.sender,
                sender_ton=args.sender_ton,
                sender_npi=args.sender_npi,
                price=args.price,
                rate=args.rate,
                callback_url=args.callback_url,
                out=out,
                err=err,
            )
        if args.clients_command == "list":
            return ops_clients.list_clients(config.database_url, fmt=args.format, out=out, err=err)
        return ops_clients.revoke(config.database_url, args.name, out=out, err=err)

    if args.command == "report":
        from smscd.ops import reports

        report_fn = reports.charges if args.kind == "charges" else reports.receipts
        return report_fn(
            config.database_url, start=args.start, end=args.end, fmt=args.format, out=out, err=err
        )

    raise AssertionError(f"unhandled command {args.command!r}")  # argparse requires one


def _status(config: Config, *, as_json: bool, timeout: float, out: TextIO, err: TextIO) -> int:
    """``smscd status``: the daemon named by the config's ``[metrics] listen``."""
    from smscd.web import StatusUnavailable, fetch_status, render_status

    if config.metrics_listen is None:
        print(f"smscd: status: {config.source}: [metrics] listen is empty: no status", file=err)
        return 2
    try:
        document = fetch_status(config.metrics_listen, token=config.metrics_token, timeout=timeout)
    except StatusUnavailable as exc:
        print(f"smscd: status: {exc}", file=err)
        return 1
    if as_json:
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        out.write(render_status(document))
    return 0 if document.get("healthy") is True else 1


if __name__ == "__main__":
    raise SystemExit(main())
