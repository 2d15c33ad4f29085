"""`limit config check` as an operator runs it, on the production example
(``docker/limit-graph.toml``) with the documented secret variables set -- it passes -- and
on broken copies of it: each names its problem and exits 1.  Real files, the real CLI,
the real Postgres (and a closed port for the unreachable one)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import clean_env, run_limit

EXAMPLE = Path(__file__).resolve().parents[2] / "docker" / "limit-graph.toml"
ADMIN = "admin-key-" + "a" * 30
RUNNER = "runner-key-" + "r" * 30
AUTH = "auth-secret-" + "s" * 40
KEK = base64.b64encode(os.urandom(32)).decode()
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


def secrets(**more: str) -> dict[str, str]:
    return {
        "LIMIT_ADMIN_API_KEY": ADMIN,
        "LIMIT_RUNNER_API_KEY": RUNNER,
        "LIMIT_AUTH_SECRET": AUTH,
        "LIMIT_DATA_KEK": KEK,
        **more,
    }


def check(
    tmp_path: Path, config: Path, database_url: str, *args: str, **environ: str
) -> subprocess.CompletedProcess[str]:
    """``limit config check CONFIG`` with the database at ``database_url`` and a home of
    its own; ``environ`` adds (or, given as "", clears) variables."""
    env = clean_env(DATABASE_URL=database_url, LIMIT_HOME=str(tmp_path / "home"))
    env.update(environ)
    env = {k: v for k, v in env.items() if v}
    return run_limit("config", "check", str(config), *args, cwd=tmp_path, env=env)


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    copy = tmp_path / "limit-graph.toml"
    copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    return copy


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "configuration refused" in result.stderr
    return result.stderr


def test_the_production_example_passes_with_its_secrets_set(
    tmp_path: Path, postgres_url: str
) -> None:
    result = check(tmp_path, EXAMPLE, postgres_url, **secrets())
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "configuration OK"
    assert "ok: database: " in result.stderr and "answers" in result.stderr
    out = result.stdout
    for secret in (ADMIN, RUNNER, AUTH, KEK):
        assert secret not in out and secret not in result.stderr
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()[2:]}
    assert rows["mode"] == ['"prod"', f"file {EXAMPLE}"]
    assert rows["admin_api_key"] == ['"********"', "env LIMIT_ADMIN_API_KEY"]
    assert rows["encryption.kek"] == ['"********"', "env LIMIT_DATA_KEK"]
    assert rows["storage.url"][1] == "env DATABASE_URL"
    assert rows["governance.redis_url"] == ['"redis://redis:6379/0"', f"file {EXAMPLE}"]
    assert rows["server.workers"] == ["2", f"file {EXAMPLE}"]
    assert rows["storage.max_overflow"] == ["8", f"file {EXAMPLE}"]
    assert rows["lineage.batch"] == ["500", "default"]


def test_secrets_from_files_and_a_password_masked_as_json(
    tmp_path: Path, postgres_url: str
) -> None:
    held = tmp_path / "secrets"
    held.mkdir()
    files = {}
    for variable, value in secrets().items():
        (held / variable).write_text(value + "\n", encoding="utf-8")
        files[f"{variable}_FILE"] = str(held / variable)
    with_password = postgres_url.replace("postgres@", "postgres:not-the-password@", 1)
    (held / "url").write_text(with_password)
    result = check(tmp_path, EXAMPLE, "", "--json", DATABASE_URL_FILE=str(held / "url"), **files)
    report = json.loads(result.stdout)
    # trust authentication on the test server: the password is not checked
    assert result.returncode == 0 and report["ok"] is True, report["errors"]
    settings = report["settings"]
    assert settings["auth.secret"] == {
        "value": "********",
        "from": f"file {held / 'LIMIT_AUTH_SECRET'} (LIMIT_AUTH_SECRET_FILE)",
    }
    assert settings["storage.url"]["value"].startswith("postgresql+psycopg://postgres:********@")
    assert "not-the-password" not in result.stdout + result.stderr
    assert report["errors"] == [] and report["file"] == str(EXAMPLE)


def test_a_key_with_a_typo_is_named_with_its_file(tmp_path: Path) -> None:
    copy = broken_copy(tmp_path, 'bind_address = "0.0.0.0:8080"', 'bind_adress = "0.0.0.0:8080"')
    errors = refused(check(tmp_path, copy, UNREACHABLE, **secrets()))
    assert (
        f"error: invalid configuration in {copy}: server.bind_adress: unknown key; "
        "did you mean 'bind_address'?"
    ) in errors


def test_a_secret_written_in_the_file_is_named_with_its_variable(tmp_path: Path) -> None:
    copy = broken_copy(
        tmp_path, "[server]\n", '[auth]\nsecret = "written-in-the-file-0123456789"\n\n[server]\n'
    )
    errors = refused(check(tmp_path, copy, UNREACHABLE, **secrets()))
    assert (
        f"error: invalid configuration in {copy}: auth.secret: a secret is never read from "
        "the config file; set LIMIT_AUTH_SECRET or LIMIT_AUTH_SECRET_FILE instead"
    ) in errors
    assert "written-in-the-file" not in errors


@pytest.mark.parametrize(
    ("variable", "named"),
    [
        ("LIMIT_ADMIN_API_KEY", "admin_api_key is a placeholder"),
        ("LIMIT_AUTH_SECRET", "auth.secret is a placeholder"),
        ("LIMIT_RUNNER_API_KEY", "dispatch.runner_api_key is a placeholder"),
    ],
)
def test_a_placeholder_secret_in_prod_mode_is_named(
    tmp_path: Path, variable: str, named: str
) -> None:
    errors = refused(check(tmp_path, EXAMPLE, UNREACHABLE, **secrets(**{variable: "changeme"})))
    assert f"error: invalid configuration in {EXAMPLE}: {named} or shorter than 24" in errors
    assert f"set a real secret in {variable} or {variable}_FILE" in errors


def test_a_placeholder_key_in_a_home_file_is_named(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.key").write_text("changeme\n")
    errors = refused(check(tmp_path, EXAMPLE, postgres_url, **secrets(LIMIT_ADMIN_API_KEY="")))
    assert f"error: the admin API key in {home / 'admin.key'} is a placeholder" in errors


@pytest.mark.parametrize(
    ("cleared", "named"),
    [
        ("LIMIT_ADMIN_API_KEY", "no admin API key (admin_api_key): set LIMIT_ADMIN_API_KEY or"),
        ("LIMIT_AUTH_SECRET", "no auth secret (auth.secret): set LIMIT_AUTH_SECRET or"),
        ("LIMIT_RUNNER_API_KEY", "no runner API key (dispatch.runner_api_key): set LIMIT_RUN"),
        ("LIMIT_DATA_KEK", "no key-encryption key (encryption.kek): set LIMIT_DATA_KEK or"),
    ],
)
def test_a_missing_secret_is_named_with_its_variables(
    tmp_path: Path, postgres_url: str, cleared: str, named: str
) -> None:
    errors = refused(check(tmp_path, EXAMPLE, postgres_url, **secrets(**{cleared: ""})))
    assert f"error: {named}" in errors
    assert errors.count("error: ") == 1, errors


def test_an_api_key_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    copy = broken_copy(
        tmp_path,
        'default = "local"\n',
        'default = "local"\n[backends.ibm]\ntype = "quantum"\nprovider = "ibm"\n'
        'api_key_file = "keys/ibm.key"\n',
    )
    errors = refused(check(tmp_path, copy, UNREACHABLE, **secrets()))
    assert (
        f"error: invalid configuration in {copy}: backends.ibm.api_key_file: cannot read "
        f"{tmp_path / 'keys' / 'ibm.key'}"
    ) in errors


def test_an_unreachable_database_is_named(tmp_path: Path) -> None:
    errors = refused(check(tmp_path, EXAMPLE, UNREACHABLE, **secrets()))
    assert "error: the database at postgresql+psycopg://postgres@127.0.0.1:1/test is " in errors
    assert "unreachable: connection failed" in errors
    assert errors.count("error: ") == 1, errors


def test_an_unreachable_database_as_json(tmp_path: Path) -> None:
    result = check(tmp_path, EXAMPLE, UNREACHABLE, "--json", **secrets())
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["mode"] == "prod"
    [error] = report["errors"]
    assert "127.0.0.1:1/test is unreachable" in error


def test_warnings_are_printed_and_do_not_fail(tmp_path: Path) -> None:
    config = tmp_path / "dev.toml"
    config.write_text(
        '[storage]\ntype = "memory"\n[backends.ibm]\ntype = "quantum"\nprovider = "ibm"\n'
    )
    result = check(tmp_path, config, "", LIMIT_BACKEND_IBM_API_KEY="changeme")
    assert result.returncode == 0, result.stderr
    assert "warning: LIMIT_BACKEND_IBM_API_KEY is a placeholder ('changeme')" in result.stderr
    assert "made at first start in" in result.stdout
    assert result.stderr.splitlines()[-1] == "configuration OK"


def test_a_file_that_does_not_exist_or_is_not_toml(tmp_path: Path) -> None:
    missing = refused(check(tmp_path, tmp_path / "nope.toml", UNREACHABLE))
    assert f"error: config file {tmp_path / 'nope.toml'} does not exist" in missing
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    assert f"error: config file {bad} is not valid TOML" in refused(check(tmp_path, bad, ""))


def test_limit_config_reference_prints_the_documented_table(tmp_path: Path) -> None:
    result = run_limit("config", "reference", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    doc = (EXAMPLE.parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert result.stdout.strip() in doc
    assert '| `server.bind_address` | `BIND_ADDRESS` | `"127.0.0.1:8080"` |' in result.stdout
