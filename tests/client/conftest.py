"""A real server of the app (uvicorn on a loopback port, SQLite) for the SDK's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from limit_graph.client import LimitClient
from limit_graph.core.settings import load_settings
from tests.fixtures.live import LiveServer, live_server

KEY = "client-test-admin-key-0123456789ab"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("client")
    settings = load_settings(
        environ={},
        home=str(home),
        admin_api_key=KEY,
        storage__url=f"sqlite:///{home / 'client.db'}",
    )
    with live_server(settings) as running:
        yield running


@pytest.fixture
def client(server: LiveServer) -> Iterator[LimitClient]:
    with LimitClient(server.url, KEY) as sdk:
        yield sdk


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
