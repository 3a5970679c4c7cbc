"""``python -m tests.fuzz MODE [options]``: run one bounded fuzzer.

Modes:

    core    mutated PDUs into the sans-I/O SMPP core (tests.fuzz.fuzz_core)
    daemon  hostile and mutated PDUs from the simulator into ``smscd run``
            (tests.fuzz.fuzz_daemon)

Each mode module offers ``add_arguments(parser)`` and ``main(args) -> int`` (the
exit status: 0 when nothing failed); a new mode is one more entry in ``MODES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

MODES = {
    "core": "tests.fuzz.fuzz_core",
    "daemon": "tests.fuzz.fuzz_daemon",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    subparsers = parser.add_subparsers(dest="mode", required=True)
    for mode, module_name in MODES.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(mode, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    args = parser.parse_args(argv)
    status: int = args.module.main(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
