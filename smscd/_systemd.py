"""sd_notify(3) over trio: READY=1, STOPPING=1, WATCHDOG=1, STATUS=...

The protocol is one datagram to the AF_UNIX socket named in $NOTIFY_SOCKET (a
leading ``@`` means the abstract namespace). Without $NOTIFY_SOCKET every call
is a no-op, so the daemon runs the same outside systemd. The whole protocol is a
dozen lines; a dependency for it would be larger than the code.
"""

from __future__ import annotations

import os
import socket as _stdlib_socket

import trio

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    async def notify(self, *states: str) -> None:
        if self._address is None:
            return
        sock = trio.socket.socket(_stdlib_socket.AF_UNIX, _stdlib_socket.SOCK_DGRAM)
        with sock:
            try:
                await sock.sendto("\n".join(states).encode(), self._address)
            except OSError:
                # systemd went away or the socket is gone: nothing to tell.
                return


def watchdog_interval() -> float | None:
    """Half of WatchdogSec when systemd asked this process for pings, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.05)
    except ValueError:
        return None
