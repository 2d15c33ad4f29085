"""The envelope primitives: fields sealed for one place open there only, under the key
that sealed them; data keys wrapped by a KEK; commitments; where the KEK comes from."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from limit_graph.core.encryption_settings import EncryptionSettings
from limit_graph.core.errors import ConfigError, SealError
from limit_graph.core.kek import keks_from_environment, load_keks, parse_kek
from limit_graph.core.sealing import (
    Aad,
    KeyEncryptionKeys,
    SecretKey,
    commitment,
    kek_id,
    new_data_key,
    new_salt,
    open_token,
    open_value,
    seal_value,
    token_key_id,
)

PLACE = Aad("acme", "limit_executions", "inputs", "0b8e0d4c")
VALUE = {"ssn": "078-05-1120", "n": [1, 2.5, None, True]}


def _kek() -> SecretKey:
    raw = os.urandom(32)
    return SecretKey(kek_id(raw), raw)


def test_a_value_round_trips_with_its_salt_and_each_seal_differs() -> None:
    key = new_data_key()
    salt = new_salt()
    first, second = (seal_value(key, VALUE, PLACE, salt) for _ in range(2))
    assert first != second, "a fresh nonce per seal"
    opened = open_value(first, PLACE, {key.kid: key}.get)
    assert opened.value == VALUE and opened.salt == salt
    assert token_key_id(first) == key.kid and "078-05-1120" not in first


@pytest.mark.parametrize(
    "elsewhere",
    [
        Aad("acme", "limit_executions", "inputs", "another-record"),
        Aad("acme", "limit_executions", "result", "0b8e0d4c"),
        Aad("globex", "limit_executions", "inputs", "0b8e0d4c"),
        Aad("acme", "limit_archives", "inputs", "0b8e0d4c"),
        Aad(None, "limit_executions", "inputs", "0b8e0d4c"),
    ],
    ids=["record", "column", "tenant", "table", "no-tenant"],
)
def test_a_value_moved_anywhere_else_does_not_open(elsewhere: Aad) -> None:
    key = new_data_key()
    token = seal_value(key, VALUE, PLACE, new_salt())
    with pytest.raises(SealError, match="moved there from another record, column or tenant") as e:
        open_value(token, elsewhere, {key.kid: key}.get)
    assert str(elsewhere) in e.value.detail and "078-05-1120" not in e.value.detail


def test_another_key_an_unknown_key_or_an_altered_text_is_refused() -> None:
    key = new_data_key()
    token = seal_value(key, VALUE, PLACE, new_salt())
    impostor = SecretKey(key.kid, os.urandom(32))
    with pytest.raises(SealError, match="does not decrypt"):
        open_value(token, PLACE, {key.kid: impostor}.get)
    with pytest.raises(SealError, match="does not hold"):
        open_value(token, PLACE, lambda _: None)
    with pytest.raises(SealError, match="sealed under key"):
        new_data_key().open(token, PLACE)
    cut = token[: len(token) - 32]  # whole base64 quanta: a shorter ciphertext
    with pytest.raises(SealError, match="does not decrypt"):
        open_value(cut, PLACE, {key.kid: key}.get)
    for broken, why in (
        ("plain text", "not a sealed value"),
        ("lgenc:v1:dk-1", "of the form"),
        ("lgenc:v1:dk-1:@@@@", "not base64url"),
        ("lgenc:v1:dk-1:AAAA", "truncated"),
    ):
        with pytest.raises(SealError, match=why):
            open_token(broken, PLACE, {"dk-1": key}.get)


def test_a_data_key_unwraps_only_under_its_kek_and_its_own_id() -> None:
    keks = KeyEncryptionKeys(_kek())
    data_key = new_data_key()
    wrapped = keks.wrap(data_key)
    assert keks.unwrap(data_key.kid, wrapped) == data_key
    assert token_key_id(wrapped) == keks.current.kid
    with pytest.raises(SealError, match="does not decrypt"):
        keks.unwrap("dk-someone-else", wrapped)
    with pytest.raises(SealError, match="not configured.*LIMIT_DATA_KEK_PREVIOUS"):
        KeyEncryptionKeys(_kek()).unwrap(data_key.kid, wrapped)
    rotated = KeyEncryptionKeys(_kek(), (keks.current,))
    assert rotated.unwrap(data_key.kid, wrapped) == data_key
    assert token_key_id(rotated.wrap(data_key)) == rotated.current.kid


def test_a_commitment_is_salted_and_canonical() -> None:
    salt = new_salt()
    assert commitment({"a": 1, "b": [2]}, salt) == commitment({"b": [2], "a": 1}, salt)
    assert commitment(VALUE, salt) != commitment(VALUE, new_salt())
    assert (
        commitment(VALUE, salt).startswith("sealed:sha256:") and len(commitment(VALUE, salt)) == 78
    )
    with pytest.raises(SealError, match="salt"):
        commitment(VALUE, "not base64!")


def test_keys_refuse_bad_ids_and_lengths() -> None:
    with pytest.raises(ValueError, match="key id"):
        SecretKey("has space", bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        SecretKey("dk-1", bytes(16))


def test_a_kek_is_the_base64_of_32_bytes() -> None:
    raw = os.urandom(32)
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ):
        assert parse_kek(f" {text}\n", "LIMIT_DATA_KEK").material == raw
    with pytest.raises(ConfigError, match="LIMIT_DATA_KEK holds 16 bytes"):
        parse_kek(base64.b64encode(bytes(16)).decode(), "LIMIT_DATA_KEK")
    with pytest.raises(ConfigError, match="not base64"):
        parse_kek("***", "LIMIT_DATA_KEK")


def test_prod_mode_needs_the_kek_named_by_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LIMIT_DATA_KEK or LIMIT_DATA_KEK_FILE"):
        load_keks(EncryptionSettings(), home=tmp_path, mode="prod")
    assert not (tmp_path / "data.kek").exists(), "prod mode makes no key"
    given = base64.b64encode(os.urandom(32)).decode()
    keks = load_keks(EncryptionSettings(kek=given), home=tmp_path, mode="prod")
    assert keks.current.kid == parse_kek(given, "x").kid


def test_dev_mode_makes_one_kek_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_keks(EncryptionSettings(), home=home, mode="dev")
    again = load_keks(EncryptionSettings(), home=home, mode="dev")
    assert first.current == again.current
    assert stat.S_IMODE((home / "data.kek").stat().st_mode) == 0o600
    (home / "data.kek").write_text("short\n")
    with pytest.raises(ConfigError, match="data.kek"):
        load_keks(EncryptionSettings(), home=home, mode="dev")


def test_the_environment_gives_the_kek_a_file_of_it_and_the_previous_ones(tmp_path: Path) -> None:
    current, previous = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    held = tmp_path / "kek"
    held.write_text(current + "\n")
    keks = keks_from_environment(
        {
            "LIMIT_DATA_KEK_FILE": str(held),
            "LIMIT_DATA_KEK_PREVIOUS": previous,
            "LIMIT_MODE": "prod",
        }
    )
    assert keks.current.kid == parse_kek(current, "x").kid
    assert keks.get(parse_kek(previous, "x").kid) is not None and len(keks.ids) == 2
    with pytest.raises(ConfigError, match="not both"):
        keks_from_environment({"LIMIT_DATA_KEK": current, "LIMIT_DATA_KEK_FILE": str(held)})
    with pytest.raises(ConfigError, match="cannot be read"):
        keks_from_environment({"LIMIT_DATA_KEK_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="LIMIT_DATA_KEK or LIMIT_DATA_KEK_FILE"):
        keks_from_environment({"LIMIT_MODE": "prod"})
