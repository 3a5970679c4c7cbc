"""Alembic migrations of the smscd store (run through smscd.store.migrate)."""

from __future__ import annotations
