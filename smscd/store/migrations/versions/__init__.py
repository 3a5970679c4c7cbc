"""Migration scripts, one per schema revision."""

from __future__ import annotations
