"""The server secret: digests and ciphertexts per purpose, and where the secret comes from."""

from __future__ import annotations

import base64
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import load_settings
from limit_graph.governance.secrets import ServerSecret, ensure_secret_file

SECRET = "a server secret long enough for production use"


def test_a_digest_is_hmac_hex_and_separated_by_purpose() -> None:
    secret = ServerSecret(SECRET)
    digest = secret.digest("lgk_id_value", purpose="api-key")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == ServerSecret(SECRET).digest("lgk_id_value", purpose="api-key")
    assert digest != secret.digest("lgk_id_value", purpose="client-secret")
    assert digest != ServerSecret(SECRET + "!").digest("lgk_id_value", purpose="api-key")
    assert "lgk_id_value" not in digest


def test_matches_only_the_value_and_purpose_it_was_made_for() -> None:
    secret = ServerSecret(SECRET)
    digest = secret.digest("value", purpose="api-key")
    assert secret.matches("value", digest, purpose="api-key")
    assert not secret.matches("value ", digest, purpose="api-key")
    assert not secret.matches("value", digest, purpose="client-secret")
    assert not secret.matches("value", digest.upper(), purpose="api-key")
    assert not ServerSecret(SECRET + "x").matches("value", digest, purpose="api-key")


@pytest.mark.parametrize("stored", ["", "zz", "é" * 64, "0" * 64])
def test_matches_refuses_any_stored_digest_that_is_not_its_own(stored: str) -> None:
    assert not ServerSecret(SECRET).matches("value", stored, purpose="api-key")


def test_encryption_round_trips_with_a_fresh_nonce_each_time() -> None:
    secret = ServerSecret(SECRET)
    first = secret.encrypt(b"-----BEGIN PRIVATE KEY-----", purpose="signing-key")
    second = secret.encrypt(b"-----BEGIN PRIVATE KEY-----", purpose="signing-key")
    assert first != second and first.startswith(f"lgs1.{secret.fingerprint}.")
    assert "PRIVATE" not in first
    assert secret.decrypt(first, purpose="signing-key") == b"-----BEGIN PRIVATE KEY-----"
    assert ServerSecret(SECRET).decrypt(second, purpose="signing-key").endswith(b"KEY-----")


def test_another_secret_is_told_apart_from_an_altered_ciphertext() -> None:
    sealed = ServerSecret(SECRET).encrypt(b"data", purpose="signing-key")
    with pytest.raises(ConfigError, match="another server secret") as caught:
        ServerSecret("another secret entirely, also long").decrypt(sealed, purpose="signing-key")
    assert SECRET not in caught.value.detail


def test_another_purpose_does_not_decrypt() -> None:
    secret = ServerSecret(SECRET)
    sealed = secret.encrypt(b"data", purpose="signing-key")
    with pytest.raises(ConfigError, match="does not decrypt"):
        secret.decrypt(sealed, purpose="field")


def _flip(sealed: str, at: int) -> str:
    prefix, fingerprint, body = sealed.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[at] ^= 0x01
    return f"{prefix}.{fingerprint}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("at", [0, 12, -1], ids=["nonce", "ciphertext", "tag"])
def test_an_altered_byte_anywhere_is_a_clear_error_never_garbage(at: int) -> None:
    secret = ServerSecret(SECRET)
    sealed = secret.encrypt(b"the plain data", purpose="signing-key")
    with pytest.raises(ConfigError, match="altered") as caught:
        secret.decrypt(_flip(sealed, at), purpose="signing-key")
    assert "the plain data" not in caught.value.detail


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "not of the form"),
        ("lgs2.abc.def", "not of the form"),
        ("lgs1.{fp}.a.b", "not of the form"),
        ("lgs1.{fp}.!!!!", "not base64url"),
        ("lgs1.{fp}.AAAA", "truncated"),
    ],
)
def test_malformed_ciphertexts(token: str, message: str) -> None:
    secret = ServerSecret(SECRET)
    with pytest.raises(ConfigError, match=message):
        secret.decrypt(token.format(fp=secret.fingerprint), purpose="signing-key")


def test_purposes_are_short_names_and_the_secret_is_never_shown() -> None:
    secret = ServerSecret(SECRET)
    with pytest.raises(ValueError, match="purpose"):
        secret.digest("v", purpose="API KEY")
    assert SECRET not in repr(secret) and secret.fingerprint in repr(secret)
    with pytest.raises(ConfigError, match="empty"):
        ServerSecret("")


def test_dev_mode_makes_a_private_secret_file_once(tmp_path: Path) -> None:
    settings = load_settings(environ={}, home=str(tmp_path / "home"))
    made = ServerSecret.load(settings)
    assert made.created and made.path == tmp_path / "home" / "auth.secret"
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    assert len(made.value) >= 43
    again = ServerSecret.load(settings)
    assert not again.created and again.value == made.value
    digest = ServerSecret.from_settings(settings).digest("v", purpose="api-key")
    assert ServerSecret(made.value).matches("v", digest, purpose="api-key")
    assert sorted(p.name for p in made.path.parent.iterdir()) == ["auth.secret"]


def test_the_settings_secret_wins_and_nothing_is_written(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"LIMIT_AUTH_SECRET": SECRET, "LIMIT_HOME": str(tmp_path / "home")}
    )
    found = ServerSecret.load(settings)
    assert found.value == SECRET and found.path is None and not found.created
    assert not (tmp_path / "home").exists()


def test_the_secret_file_variable_is_read(tmp_path: Path) -> None:
    held = tmp_path / "mounted"
    held.write_text(SECRET + "\n")
    settings = load_settings(
        environ={"LIMIT_AUTH_SECRET_FILE": str(held), "LIMIT_HOME": str(tmp_path / "h")}
    )
    assert ServerSecret.load(settings).value == SECRET


def test_prod_mode_never_makes_a_secret(tmp_path: Path) -> None:
    settings = load_settings(environ={"LIMIT_MODE": "prod", "LIMIT_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="LIMIT_AUTH_SECRET or LIMIT_AUTH_SECRET_FILE"):
        ServerSecret.from_settings(settings)
    assert list(tmp_path.iterdir()) == []


def test_prod_mode_uses_a_secret_file_already_in_home(tmp_path: Path) -> None:
    (tmp_path / "auth.secret").write_text(SECRET + "\n")
    settings = load_settings(environ={"LIMIT_MODE": "prod", "LIMIT_HOME": str(tmp_path)})
    assert ServerSecret.load(settings).value == SECRET


def test_an_empty_secret_file_is_an_error_not_a_new_secret(tmp_path: Path) -> None:
    (tmp_path / "auth.secret").write_text("\n")
    with pytest.raises(ConfigError, match="empty; delete it"):
        ServerSecret.from_settings(load_settings(environ={"LIMIT_HOME": str(tmp_path)}))
    assert (tmp_path / "auth.secret").read_text() == "\n"


def test_processes_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "home" / "auth.secret"
    counter = iter(range(1000))

    def ensure(_: int) -> tuple[str, bool]:
        found = ensure_secret_file(
            None, path, mode="dev", what="secret", variable="V", make=lambda: f"s{next(counter)}"
        )
        return found.value, found.created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ensure, range(32)))
    assert len({value for value, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert path.read_text().strip() == results[0][0]
    assert [p.name for p in path.parent.iterdir()] == ["auth.secret"]
