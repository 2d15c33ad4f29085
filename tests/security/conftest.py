"""One live platform per test module, and the tenants and callers of :mod:`.cast`.

Each module gets its own server (module scope): the tests of a module share it, and a
module's changes (tenants, policies, revoked keys) stay in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.core.settings import Settings, load_settings
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.live import LiveServer, live_server
from tests.security.cast import World, build_world


def security_settings(home: Path, **overrides: Any) -> Settings:
    """A dev-mode platform over a SQLite file under ``home``, with the suite's admin key."""
    return load_settings(
        environ={},
        home=str(home),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{home / 'limit.db'}",
        **overrides,
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return security_settings(tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as running:
        yield running


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    """A client with no credentials of its own: each call sends its caller's."""
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def world(http: httpx.Client) -> World:
    return build_world(http)
