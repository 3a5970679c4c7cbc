"""What every operator command shares: open the store, run one action, close it,
and turn a store error into a message on stderr and an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from smscd.store import StoreError
from smscd.store.sql import open_store

if TYPE_CHECKING:
    from collections.abc import Callable

    from smscd.store.sql import SqlStore

__all__ = ["CommandFailed", "using_store"]

T = TypeVar("T")


class CommandFailed(Exception):
    """Ends a command: the message goes to stderr, the code is the exit status."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def using_store(database_url: str, action: Callable[[SqlStore], T]) -> T:
    """Run ``action`` on a freshly opened store (refused if not migrated)."""
    try:
        store = open_store(database_url)
    except StoreError as exc:
        raise CommandFailed(f"error: {exc}") from exc
    try:
        return action(store)
    except StoreError as exc:
        raise CommandFailed(f"error: {exc}") from exc
    finally:
        store.close()
