"""Credentials blocks' secrets sealed under the platform's key-encryption key, so that
Prefect's database holds only their ciphertext.

A block field is sealed (AES-256-GCM, :mod:`limit_graph.core.sealing`) straight under
the current KEK, bound to ``prefect-block``, the block type and document name, and the
field: a sealed value copied into another block, or renamed with its block, does not
open.  The KEK is the platform's, from ``LIMIT_DATA_KEK`` or ``LIMIT_DATA_KEK_FILE``
(:func:`~limit_graph.core.kek.keks_from_environment`), so **every process that saves or
uses such a block needs that variable**: the platform registering it, and each runner
(Prefect worker) whose work opens it.  Earlier KEKs in ``LIMIT_DATA_KEK_PREVIOUS`` still
open what they sealed; saving the block again seals it under the current one.

A value saved before sealing existed (or typed into the Prefect UI) is plain text: it is
read as it is, and sealed the next time the block is saved through this code.

>>> from limit_graph.core.sealing import KeyEncryptionKeys, SecretKey
>>> keks = KeyEncryptionKeys(SecretKey("kek-test", bytes(32)))
>>> sealed = seal_block_secret("s3cret", slug="creds", name="lab", field="api_key", keks=keks)
>>> sealed.startswith("lgenc:v1:kek-test:")
True
>>> open_block_secret(sealed, slug="creds", name="lab", field="api_key", keks=keks)
's3cret'
>>> open_block_secret("typed-in-the-ui", slug="creds", name="lab", field="api_key", keks=keks)
'typed-in-the-ui'
"""

from __future__ import annotations

from limit_graph.core.kek import keks_from_environment
from limit_graph.core.sealing import Aad, KeyEncryptionKeys, is_sealed, open_token

__all__ = ["BLOCK_TABLE", "block_place", "open_block_secret", "seal_block_secret"]

BLOCK_TABLE = "prefect-block"


def block_place(slug: str, name: str, field: str) -> Aad:
    """Where a block's secret lives: the block type and document name, and the field."""
    return Aad(None, BLOCK_TABLE, field, f"{slug}/{name}")


def seal_block_secret(
    value: str, *, slug: str, name: str, field: str, keks: KeyEncryptionKeys | None = None
) -> str:
    """``value`` sealed under the current KEK (the environment's, unless given)."""
    chosen = keks or keks_from_environment()
    return chosen.current.seal(value.encode("utf-8"), block_place(slug, name, field))


def open_block_secret(
    value: str, *, slug: str, name: str, field: str, keks: KeyEncryptionKeys | None = None
) -> str:
    """The plain value of a block's secret: opened when sealed, else as it is."""
    if not is_sealed(value):
        return value
    chosen = keks or keks_from_environment()
    return open_token(value, block_place(slug, name, field), chosen.get).decode("utf-8")
