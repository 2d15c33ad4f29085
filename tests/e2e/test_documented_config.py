"""`limit up` with the configuration file the platform has always documented, whose
``[backends.quantum]`` carries ``api_key = "..."``: a secret written in the file, refused
in either mode (dev mode used to start with a warning) with where to put the key
instead, before anything is made.  Never "unknown key"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import LIMIT, clean_env
from tests.fixtures.configs import DOCUMENTED_CONFIG


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    # Only the database differs from the file: no Postgres at localhost/limitgraph here.
    return clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'limit.db'}", **more)


@pytest.mark.parametrize("mode", ["dev", "prod"])
def test_the_key_in_the_file_is_refused_with_where_to_put_it(tmp_path: Path, mode: str) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(DOCUMENTED_CONFIG)
    result = subprocess.run(
        [LIMIT, "up", "--no-prefect", "--config", str(config), "--bind", "127.0.0.1:0"],
        cwd=tmp_path,
        env=environment(tmp_path, LIMIT_MODE=mode, LIMIT_ADMIN_API_KEY="a" * 32),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown key" not in result.stderr and "Traceback" not in result.stderr
    assert (
        f"invalid configuration in {config}: backends.quantum.api_key: a secret is never "
        "read from the config file; set LIMIT_BACKEND_QUANTUM_API_KEY or "
        "LIMIT_BACKEND_QUANTUM_API_KEY_FILE, or name a file holding it in "
        "backends.quantum.api_key_file"
    ) in " ".join(result.stderr.split())
    assert not (tmp_path / ".limit").exists() and not (tmp_path / "limit.db").exists()


def test_with_the_key_in_its_variable_instead_the_check_passes_in_dev_mode(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(DOCUMENTED_CONFIG.replace('api_key = "..."\n', ""))
    result = subprocess.run(
        [LIMIT, "config", "check", str(config)],
        cwd=tmp_path,
        env=environment(tmp_path, LIMIT_BACKEND_QUANTUM_API_KEY="a-real-looking-ibm-key"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "a-real-looking-ibm-key" not in result.stdout
    assert 'backends.quantum.api_key\t"********"\tenv LIMIT_BACKEND_QUANTUM_API_KEY' in (
        result.stdout
    )
    assert "warning: storage.url in" in result.stderr  # the documented file's password
