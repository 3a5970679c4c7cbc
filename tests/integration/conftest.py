"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smscd.link import Link, LinkConfig

if TYPE_CHECKING:
    from smscd.simulator import Simulator

# --- the link (smscd.link) against the simulator ------------------------------------

#: Link settings small enough for tests to see timers, backoff and pauses quickly.
LINK_TEST_DEFAULTS: dict[str, Any] = {
    "name": "testnet",
    "host": "127.0.0.1",
    "window": 10,
    "throughput": 0.0,
    "enquire_link_interval": 30.0,
    "response_timeout": 2.0,
    "connect_timeout": 2.0,
    "backoff_initial": 0.05,
    "backoff_max": 0.4,
    "throttle_pause": 0.3,
    "ack_timeout": 2.0,
    "stop_timeout": 2.0,
}

MakeLinkConfig = Callable[..., LinkConfig]
OpenLink = Callable[[LinkConfig], AbstractAsyncContextManager[Link]]


@pytest.fixture
def link_config() -> MakeLinkConfig:
    """``link_config(sim_or_port, **overrides)``: a LinkConfig for tests."""

    def make(target: Simulator | int, **overrides: Any) -> LinkConfig:
        """``target``: a simulator (its port and account) or a bare port."""
        if isinstance(target, int):
            account = {"port": target, "system_id": "smscd", "password": "secret"}
        else:
            account = {
                "port": target.port,
                "system_id": target.config.system_id,
                "password": target.config.password,
            }
        fields: dict[str, Any] = {**LINK_TEST_DEFAULTS, **account, **overrides}
        return LinkConfig(**fields)

    return make


@asynccontextmanager
async def _open_link(config: LinkConfig) -> AsyncIterator[Link]:
    async with trio.open_nursery() as nursery:
        link = Link(config)
        await nursery.start(link.run)
        try:
            yield link
        finally:
            with trio.CancelScope(shield=True):
                await link.stop()


@pytest.fixture
def open_link() -> OpenLink:
    """``async with open_link(config) as link``: a running Link, stopped on exit."""
    return _open_link


async def wait_until(predicate: Callable[[], bool], *, poll: float = 0.005) -> None:
    """Poll ``predicate`` until it holds (bound it with the test's fail_after)."""
    while True:
        if predicate():
            return
        await trio.sleep(poll)
