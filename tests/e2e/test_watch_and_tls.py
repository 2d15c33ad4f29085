"""`limit watch` over a live event stream, and `limit up` serving TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from tests.fixtures.cli import clean_env, launch, start
from tests.fixtures.live import free_port
from tests.fixtures.tls import self_signed


def test_watch_follows_a_batch_until_the_queue_is_empty(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        key = (tmp_path / ".limit" / "admin.key").read_text().strip()
        headers = {"X-API-Key": key}
        sid = httpx.post(server.url + "/sessions", json={}, headers=headers).json()["id"]
        for n in range(6):
            response = httpx.post(
                f"{server.url}/sessions/{sid}/execute",
                json={"agent": "sleep", "inputs": {"seconds": 0.5 + n * 0.2}, "wait_s": 0},
                headers=headers,
            )
            assert response.status_code == 202
        watched = server.limit("watch", sid)
        assert watched.returncode == 0, watched.stderr
        assert "succeeded 6" in watched.stdout and "running 0" in watched.stdout
        status = httpx.get(f"{server.url}/sessions/{sid}/status", headers=headers).json()
        assert status["counts"]["succeeded"] == 6
        missing = server.limit("watch", "00000000-0000-4000-8000-000000000000")
        assert missing.returncode == 1 and "Not found (404)" in missing.stderr
    finally:
        server.stop()


def test_up_serves_tls_with_hsts(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(cert))
    server = launch(
        tmp_path, clean_env(), url, "--bind", f"127.0.0.1:{port}",
        "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), verify=context,
    )  # fmt: skip
    try:
        health = httpx.get(server.url + "/health", verify=context, timeout=5)
        assert health.status_code == 200
        assert health.headers["strict-transport-security"].startswith("max-age=")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=3)
            raise AssertionError("plain HTTP was answered on the TLS port")
        except httpx.TransportError:
            pass
    finally:
        printed = server.stop()
    assert f"REST API: {url}" in printed
