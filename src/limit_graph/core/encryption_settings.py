"""Settings of encryption at rest: the ``[encryption]`` section and its variables.

The key-encryption key (KEK) wraps the data keys that seal sensitive fields.  It is the
base64 of 32 random bytes, given by ``LIMIT_DATA_KEK`` or, for a key mounted as a file,
``LIMIT_DATA_KEK_FILE``; in dev mode, without either, one is made in ``<home>/data.kek``
(mode 0600) on first start; in prod mode a store that keeps anything at rest refuses to
start without it.  To rotate the KEK, give the new one as ``LIMIT_DATA_KEK`` and the old
ones in ``LIMIT_DATA_KEK_PREVIOUS`` (comma-separated) until ``limit keys rotate-data``
has re-wrapped every data key::

    [encryption]
    rotation_batch_size = 100    # records re-encrypted per transaction by a rotation
    key_refresh_s = 30           # how soon other processes see a new active data key

The keys themselves belong in the variables, not in the file.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["EncryptionSettings"]


class EncryptionSettings(BaseModel):
    """Where the key-encryption key comes from and how data-key rotation paces itself."""

    model_config = ConfigDict(extra="forbid")

    kek: SecretStr | None = Field(
        default=None,
        description="The key-encryption key, base64 of 32 bytes (LIMIT_DATA_KEK(_FILE)).",
    )
    previous_keks: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier key-encryption keys still wrapping data keys, until a rotation "
        "re-wraps them (LIMIT_DATA_KEK_PREVIOUS, comma-separated).",
    )
    rotation_batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Records a data-key rotation re-encrypts in one transaction.",
    )
    key_refresh_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long a process keeps sealing with the data key it last saw as "
        "active; a rotation waits this long before its last sweep.",
    )

    @field_validator("previous_keks", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A variable gives the list as one comma-separated string."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
