"""Fixtures shared by every test module; the heavier ones live in ``tests/fixtures``."""

import base64
import hashlib
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.prefect"]

SUITE_KEK = base64.b64encode(hashlib.sha256(b"limit-graph test suite KEK").digest()).decode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``early`` (the longest) first: on several workers they then run beside
    the rest rather than after it."""
    items.sort(key=lambda item: item.get_closest_marker("early") is None)


@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``limit up`` records where it serves under XDG_STATE_HOME (``cli/record.py``): the
    suite's servers record themselves in a folder of its own, never the user's.  The
    key-encryption key that processes reading no settings take from the environment
    (credentials blocks, runners) is the suite's own, the same on every worker."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        patch.setenv("LIMIT_DATA_KEK", SUITE_KEK)
        yield
