"""Operator commands: plain functions the CLI calls with plain values.

Each takes the database URL and output streams and returns a process exit code
(0 ok, 1 the data was refused, 2 unusable input or database).
"""

from __future__ import annotations

__all__: list[str] = []
