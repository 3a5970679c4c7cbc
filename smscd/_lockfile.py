"""One ``smscd run`` per SQLite store.

SQLite is the single-daemon store (several daemons share PostgreSQL). Holding an
exclusive ``flock`` on ``<database>.lock`` for the life of the process makes that
a fact rather than a convention, and lets a starting daemon release the outbox
leases that a killed predecessor left behind instead of waiting them out. The
kernel drops the lock when the process dies, ``kill -9`` included.
"""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["AlreadyRunning", "DaemonLock"]


class AlreadyRunning(Exception):
    """Another daemon holds the store."""


class DaemonLock:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(
                f"another smscd daemon is using {self.path.with_suffix('')}"
                " (SQLite stores take one daemon; share PostgreSQL to run several)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
