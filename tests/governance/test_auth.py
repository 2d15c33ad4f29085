"""The admin key: made once in dev mode, never outside it; keys compare by digest."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import load_settings
from limit_graph.governance.auth import ensure_admin_key


def test_dev_mode_makes_a_private_key_once(tmp_path: Path) -> None:
    settings = load_settings(environ={}, home=str(tmp_path / "state"))
    first = ensure_admin_key(settings)
    assert first.created and first.key.startswith("lgk_") and len(first.key) > 40
    assert first.path is not None and stat.S_IMODE(first.path.stat().st_mode) == 0o600
    second = ensure_admin_key(settings)
    assert not second.created and second.key == first.key


def test_the_environment_key_wins_and_nothing_is_written(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"LIMIT_ADMIN_API_KEY": "k" * 32, "LIMIT_HOME": str(tmp_path / "s")}
    )
    assert ensure_admin_key(settings).key == "k" * 32
    assert not (tmp_path / "s").exists()


def test_prod_mode_never_makes_a_key(tmp_path: Path) -> None:
    settings = load_settings(environ={"LIMIT_MODE": "prod", "LIMIT_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="LIMIT_ADMIN_API_KEY"):
        ensure_admin_key(settings)
    assert not (tmp_path / "admin.key").exists()


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        ensure_admin_key(load_settings(environ={"LIMIT_HOME": str(tmp_path)}))
