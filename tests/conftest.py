"""Fixtures shared by every test module; the heavier ones live in ``tests/fixtures``."""

pytest_plugins = ["tests.fixtures.postgres"]
