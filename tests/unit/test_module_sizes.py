"""The code stays in modules a reader can take in (issue 13): none of
``smscd/`` over 500 lines, and ``daemon.py``, which only builds and wires the
stages, under 300."""

from __future__ import annotations

from pathlib import Path

import smscd

PACKAGE = Path(smscd.__file__).parent


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_500_lines() -> None:
    sizes = {str(p.relative_to(PACKAGE)): _lines(p) for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(sizes) > 50  # the whole package was read
    assert {name: n for name, n in sizes.items() if n > 500} == {}


def test_the_daemon_module_only_builds_and_wires() -> None:
    assert _lines(PACKAGE / "daemon.py") < 300
