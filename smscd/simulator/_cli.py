"""``smscd simulate``: run the simulated SMSC in the foreground, or talk to one.

    smscd simulate [--host H] [--port P] [--system-id ID] [--password-file PATH]
                   [--control-port P] [--receipt-delay S] [--receipt-stat STAT]
    smscd simulate send --from NUMBER [--to 8079] [--control H:P] [--wait S] TEXT
    smscd simulate control [--control H:P] [--timeout S] REQUEST

The first prints one line per event (binds, MOs sent, MTs received in full: they are
the demo) until Ctrl-C or SIGTERM. The second asks a running simulator, through its
control port, to deliver an MO and prints the first MT sent back to that number.
The third sends one control request (a JSON object, e.g. ``'{"op": "burst", "n":
50, "source_addr": "84903{i:06d}", "text": "hello"}'``; ``'{"op": "help"}'`` lists
them) and prints each answer line.
The bind password is read from a file, never from the command line, never printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

import trio

from smscd.simulator._config import SimulatorConfig
from smscd.simulator._control import OPS, ControlError, request, request_mo
from smscd.simulator._receipt import MESSAGE_STATES
from smscd.simulator._simulator import open_simulator
from smscd.smpp import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_CONTROL_PORT", "main"]

DEFAULT_PORT = 2775
DEFAULT_CONTROL_PORT = 2776


def _status(status: object) -> str:
    if not isinstance(status, int):
        return str(status)
    if status == 0:
        return f"{status:#010x}"
    try:
        name = CommandStatus(status).name
    except ValueError:
        return f"{status:#010x}"
    return f"{status:#010x} {name}"


def describe_event(name: str, fields: Mapping[str, object]) -> str:
    """One human-readable line for a simulator event."""
    session = f"session {fields.get('session', '?')}"
    match name:
        case "connection_opened":
            return f"{session}: connection from {fields['peer']}"
        case "bind_succeeded":
            return f"{session}: bound as {fields['mode']} (system_id {fields['system_id']})"
        case "bind_failed":
            return (
                f"{session}: bind as {fields['mode']} refused for system_id"
                f" {fields['system_id']!r}: {_status(fields['status'])}"
            )
        case "submit_sm_received":
            if fields["status"] == 0:
                outcome = f"accepted as {fields['message_id']}"
            else:
                outcome = f"refused with {_status(fields['status'])}"
            return (
                f"{session}: MT from {fields['source_addr']} to {fields['destination_addr']}"
                f" ({outcome}): {fields['text']}"
            )
        case "mo_sent":
            part = f" part {fields['part']}/{fields['parts']}" if fields["parts"] != 1 else ""
            return (
                f"{session}: MO{part} from {fields['source_addr']} to"
                f" {fields['destination_addr']}: {fields['text']}"
                f" -> deliver_sm_resp {_status(fields['status'])}"
            )
        case "receipt_sent":
            return (
                f"{session}: receipt for {fields['message_id']} (id {fields['receipt_id']},"
                f" stat {fields['stat']}) -> deliver_sm_resp {_status(fields['status'])}"
            )
        case "unbind_received":
            return f"{session}: unbind received"
        case "burst_sent":
            return f"{session}: burst of {fields['n']} MOs written"
        case "mo_redelivered":
            return (
                f"{session}: MO delivered again (attempt {fields['attempt']})"
                f" -> deliver_sm_resp {_status(fields['status'])}"
            )
        case "mo_given_up":
            return (
                f"MO given up after {fields['attempts']} deliveries"
                f" (last answer {_status(fields['status'])})"
            )
        case "protocol_error":
            return f"{session}: protocol error: {fields['error']}"
        case "connection_closed":
            return f"{session}: connection closed ({fields['reason']})"
        case _:
            details = " ".join(f"{key}={value}" for key, value in fields.items())
            return f"{name} {details}"


def _print_event(name: str, fields: Mapping[str, object]) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
    print(f"{stamp} {describe_event(name, fields)}", flush=True)


def _parser() -> argparse.ArgumentParser:
    ops = "\n".join(f"  {name:24} {summary}" for name, summary in OPS.items())
    parser = argparse.ArgumentParser(
        prog="smscd simulate",
        description="Run the bundled SMPP 3.4 SMSC simulator.",
        epilog=f"control port requests (smscd simulate control '{{\"op\": ...}}'):\n{ops}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="SMPP port (default 2775)")
    parser.add_argument("--system-id", default="smscd", help="the system_id ESMEs must bind with")
    parser.add_argument(
        "--password-file",
        help="file holding the bind password (default password: secret)",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=DEFAULT_CONTROL_PORT,
        help="control port on 127.0.0.1 for `smscd simulate send` (default 2776; -1 for none)",
    )
    parser.add_argument("--short-code", default="8079", help="destination of MOs (default 8079)")
    parser.add_argument("--receipt-delay", type=float, default=0.5, help="seconds (default 0.5)")
    parser.add_argument(
        "--receipt-stat",
        default="DELIVRD",
        choices=sorted(MESSAGE_STATES),
        help="final state in receipts (default DELIVRD)",
    )
    parser.add_argument(
        "--submit-id-format", choices=("hex", "dec"), default="hex", help="default hex"
    )
    parser.add_argument(
        "--receipt-id-format", choices=("hex", "dec"), default="dec", help="default dec"
    )
    sub = parser.add_subparsers(dest="command")
    send = sub.add_parser("send", help="deliver an MO through a running simulator")
    send.add_argument("--from", dest="source", required=True, help="sender, e.g. 0327000686")
    send.add_argument("--to", default="8079", help="short code (default 8079)")
    send.add_argument(
        "--control",
        default=f"127.0.0.1:{DEFAULT_CONTROL_PORT}",
        help="the simulator's control address (default 127.0.0.1:2776)",
    )
    send.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the reply (default 10)"
    )
    send.add_argument("text", help='the MO text, e.g. "BH MK 0123456789"')
    control = sub.add_parser(
        "control",
        help="send one request to a running simulator's control port",
        description="Send one JSON request to the control port and print each answer line.",
        epilog=f"requests:\n{ops}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    control.add_argument(
        "--control",
        default=f"127.0.0.1:{DEFAULT_CONTROL_PORT}",
        help="the simulator's control address (default 127.0.0.1:2776)",
    )
    control.add_argument(
        "--timeout", type=float, default=310.0, help="seconds to wait for the answer (default 310)"
    )
    control.add_argument("request", help='a JSON object, e.g. \'{"op": "help"}\'')
    return parser


def _read_password(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.readline().rstrip("\r\n")


async def _run(config: SimulatorConfig, auth_origin: str) -> int:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_simulator(config, on_event=_print_event) as sim:
            control = (
                f"; control port 127.0.0.1:{sim.control_port}"
                if sim.control_port is not None
                else ""
            )
            print(
                f"SMSC simulator listening on {config.host}:{sim.port}"
                f" (system_id {config.system_id!r}, {auth_origin}){control}",
                flush=True,
            )
            async for signum in signals:
                print(f"{signal.Signals(signum).name}: stopping", flush=True)
                break
    return 0


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--control must be HOST:PORT, not {address!r}")
    return host, int(port)


async def _send(args: argparse.Namespace) -> int:
    host, port = _split_address(args.control)
    got_reply = False

    def show(message: dict[str, Any]) -> None:
        nonlocal got_reply
        match message.get("event"):
            case "mo_accepted":
                status = message.get("status")
                word = "accepted" if status == 0 else "answered"
                print(f"MO {word} (deliver_sm_resp status {_status(status)})", flush=True)
            case "reply":
                got_reply = True
                print(f"reply: {message.get('text')}", flush=True)
            case "no_reply":
                print(
                    f"no reply to {args.source} within {args.wait:g} s",
                    file=sys.stderr,
                    flush=True,
                )
            case _:
                print(f"simulator: {message.get('message', message)}", file=sys.stderr)

    try:
        with trio.fail_after(args.wait + 5.0):
            await request_mo(
                host,
                port,
                source_addr=args.source,
                destination_addr=args.to,
                text=args.text,
                wait=args.wait,
                on_message=show,
            )
    except ControlError as exc:
        hint = ": start one with `smscd simulate`" if "no simulator" in str(exc) else ""
        print(f"{exc}{hint}", file=sys.stderr)
        return 1
    except trio.TooSlowError:
        print(f"the simulator on {args.control} did not answer", file=sys.stderr)
        return 1
    return 0 if got_reply else 1


async def _control(args: argparse.Namespace) -> int:
    host, port = _split_address(args.control)
    try:
        message = json.loads(args.request)
    except ValueError as exc:
        print(f"the request is not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(message, dict):
        print("the request must be a JSON object", file=sys.stderr)
        return 2
    try:
        with trio.fail_after(args.timeout):
            last = await request(
                host, port, message, on_message=lambda m: print(json.dumps(m), flush=True)
            )
    except ControlError as exc:
        print(exc, file=sys.stderr)
        return 1
    except trio.TooSlowError:
        print(f"the simulator on {args.control} did not answer", file=sys.stderr)
        return 1
    return 1 if last.get("event") == "error" else 0


def main(argv: list[str]) -> int:
    """Entry point of ``smscd simulate``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("send", "control"):
        try:
            return trio.run(_send if args.command == "send" else _control, args)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    auth_origin = "default password"
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        system_id=args.system_id,
        short_code=args.short_code,
        receipt_delay=args.receipt_delay,
        receipt_stat=args.receipt_stat,
        submit_id_format=args.submit_id_format,
        receipt_id_format=args.receipt_id_format,
        control_port=None if args.control_port < 0 else args.control_port,
    )
    if args.password_file is not None:
        try:
            config.password = _read_password(args.password_file)
        except OSError as exc:
            print(f"cannot read --password-file: {exc.strerror}", file=sys.stderr)
            return 2
        auth_origin = "password from --password-file"
    try:
        return trio.run(_run, config, auth_origin)
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1
