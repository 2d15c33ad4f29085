"""Fixtures shared by every test module; the heavier ones live in ``tests/fixtures``."""

from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.prefect"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``early`` (the longest) first: on several workers they then run beside
    the rest rather than after it."""
    items.sort(key=lambda item: item.get_closest_marker("early") is None)


@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``limit up`` records where it serves under XDG_STATE_HOME (``cli/record.py``): the
    suite's servers record themselves in a folder of its own, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield
