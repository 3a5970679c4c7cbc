"""The API listener over TLS (``[api] cert``/``key``): the front process
answers over https, and a certificate that cannot be read fails before the
listener reports itself started."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from smscd.config import ApiConfig, LogConfig
from smscd.service.api import run_front
from tests.api.test_messages_app import APP_TOKEN, FakeBackend

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "api.crt", directory / "api.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _ignore(route: str, status: int) -> None:
    pass


async def test_the_api_speaks_tls_when_cert_and_key_are_set(tmp_path: Path) -> None:
    cert, key = await trio.to_thread.run_sync(self_signed, tmp_path)
    config = ApiConfig(listen="127.0.0.1:0", cert=str(cert), key=str(key), default_route="sim")
    trusted = ssl.create_default_context(cafile=str(cert))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(run_front, FakeBackend(), config, LogConfig(), _ignore)
        with trio.fail_after(20):
            async with httpx.AsyncClient(verify=trusted, timeout=5) as https:
                response = await https.get(
                    f"https://127.0.0.1:{port}/v1/messages/1",
                    headers={"authorization": f"Bearer {APP_TOKEN}"},
                )
                assert (response.status_code, response.json()["error"]) == (404, "not_found")
                assert response.http_version == "HTTP/1.1"
            async with httpx.AsyncClient(timeout=5) as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get(f"http://127.0.0.1:{port}/v1/messages/1")
        nursery.cancel_scope.cancel()


async def test_an_unreadable_certificate_fails_before_started(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    config = ApiConfig(listen="127.0.0.1:0", cert=missing, key=missing, default_route="sim")
    with trio.fail_after(5), pytest.raises(ExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_front, FakeBackend(), config, LogConfig(), _ignore)
    # The daemon turns this OSError into api_listen_failed and exit 2.
    assert info.group_contains(FileNotFoundError)
