"""The ``[auth]`` and ``[auth.oidc]`` sections, the auth secret's variables, and the
refusal of a placeholder secret outside dev mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import AuthSettings, load_settings

SECRET = "a real secret of more than 24 characters"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    auth = load_settings(environ={}).auth
    assert auth == AuthSettings()
    assert (auth.issuer, auth.audience, auth.token_ttl_s, auth.leeway_s) == (
        "limit-graph",
        "limit-graph",
        900,
        30,
    )
    assert auth.signing_algorithm == "EdDSA" and auth.secret is None and auth.oidc is None


def test_the_sections_from_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[auth]
issuer = "https://limit.example.org"
token_ttl_s = 300
signing_algorithm = "RS256"

[auth.oidc]
issuer = "https://login.example.org/realms/lab"
audience = "limit-api"
algorithms = ["RS256"]
jwks_cache_s = 600
default_tenant = "lab"
claims = { tenant = "org", roles = "scope" }
""",
    )
    auth = load_settings(path, environ={}).auth
    assert auth.issuer == "https://limit.example.org" and auth.token_ttl_s == 300
    assert auth.signing_algorithm == "RS256"
    oidc = auth.oidc
    assert oidc is not None and oidc.audience == "limit-api" and oidc.algorithms == ["RS256"]
    assert (oidc.claims.tenant, oidc.claims.roles, oidc.claims.name, oidc.claims.groups) == (
        "org",
        "scope",
        "preferred_username",
        "groups",
    )
    assert oidc.jwks_cache_s == 600 and oidc.default_tenant == "lab"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[auth]\nbogus = 1", "auth.bogus: unknown key"),
        ('[auth.oidc]\nissuer = "https://i"\naudience = "a"\nkeys = 1', "auth.oidc.keys: unknown"),
        ('[auth.oidc]\nissuer = "https://i"\naudience = "a"\nclaims = { who = "x" }', "claims.who"),
        ("[auth]\ntoken_ttl_s = 7200", "auth.token_ttl_s: Input should be less than or equal"),
        ("[auth]\ntoken_ttl_s = 30", "auth.token_ttl_s: Input should be greater than or equal"),
        ("[auth]\nleeway_s = 301", "auth.leeway_s"),
        ('[auth]\nsigning_algorithm = "HS256"', "auth.signing_algorithm: Input should be"),
        (
            '[auth.oidc]\nissuer = "https://i"\naudience = "a"\nalgorithms = ["HS256"]',
            "algorithms.0: Input should be 'RS256'",
        ),
        (
            '[auth.oidc]\nissuer = "https://i"\naudience = "a"\nalgorithms = ["none"]',
            "algorithms.0: Input should be",
        ),
        ('[auth.oidc]\nissuer = "https://i"\naudience = "a"\nalgorithms = []', "algorithms"),
        ('[auth.oidc]\nissuer = "login.example.org"\naudience = "a"', "auth.oidc.issuer"),
        ('[auth.oidc]\nissuer = "https://i"', "auth.oidc.audience: Field required"),
        ('[auth.oidc]\nissuer = "https://i"\naudience = "a"\ndefault_tenant = "A B"', "tenant"),
    ],
)
def test_bad_values_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, environ={})
    assert str(path) in caught.value.detail


def test_the_secret_from_its_variable() -> None:
    auth = load_settings(environ={"LIMIT_AUTH_SECRET": SECRET}).auth
    assert auth.secret is not None and auth.secret.get_secret_value() == SECRET
    assert SECRET not in repr(auth)


def test_the_secret_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    held = tmp_path / "auth-secret"
    held.write_text(f"  {SECRET}\n", encoding="utf-8")
    auth = load_settings(environ={"LIMIT_AUTH_SECRET_FILE": str(held)}).auth
    assert auth.secret is not None and auth.secret.get_secret_value() == SECRET


def test_the_secret_in_the_config_file_is_refused_naming_its_variables(tmp_path: Path) -> None:
    held = tmp_path / "auth-secret"
    held.write_text(SECRET, encoding="utf-8")
    path = write(tmp_path, '[auth]\nsecret = "from the config file, long enough"')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"LIMIT_AUTH_SECRET_FILE": str(held)})
    assert caught.value.detail == (
        f"invalid configuration in {path}: auth.secret: a secret is never read from the "
        "config file; set LIMIT_AUTH_SECRET or LIMIT_AUTH_SECRET_FILE instead"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LIMIT_AUTH_SECRET_FILE": "{missing}"}, "names .*missing, which cannot be read"),
        ({"LIMIT_AUTH_SECRET_FILE": "{empty}"}, "names .*empty, which is empty"),
        (
            {"LIMIT_AUTH_SECRET_FILE": "{empty}", "LIMIT_AUTH_SECRET": SECRET},
            "set LIMIT_AUTH_SECRET or LIMIT_AUTH_SECRET_FILE, not both",
        ),
    ],
)
def test_a_bad_secret_file_variable(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    (tmp_path / "empty").write_text("\n")
    given = {
        k: v.format(missing=tmp_path / "missing", empty=tmp_path / "empty")
        for k, v in environ.items()
    }
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(environ=given)
    assert SECRET not in caught.value.detail


@pytest.mark.parametrize("secret", ["changeme", "secret", "x" * 23])
def test_prod_refuses_a_placeholder_or_short_auth_secret(secret: str) -> None:
    with pytest.raises(ConfigError, match="auth.secret is a placeholder or shorter than 24"):
        load_settings(environ={"LIMIT_MODE": "prod", "LIMIT_AUTH_SECRET": secret})


def test_prod_takes_a_real_secret_and_dev_takes_any() -> None:
    prod = load_settings(environ={"LIMIT_MODE": "prod", "LIMIT_AUTH_SECRET": SECRET})
    assert prod.auth.secret is not None
    assert load_settings(environ={"LIMIT_AUTH_SECRET": "changeme"}).auth.secret is not None


def test_the_dev_secret_lives_under_home(tmp_path: Path) -> None:
    settings = load_settings(environ={"LIMIT_HOME": str(tmp_path)})
    assert settings.auth_secret_path == tmp_path / "auth.secret"
