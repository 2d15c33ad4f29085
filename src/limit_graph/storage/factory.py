"""Pick the storage backend the settings name."""

from __future__ import annotations

from limit_graph.core.kek import load_keks
from limit_graph.core.settings import Settings
from limit_graph.storage.base import Storage

__all__ = ["open_storage"]


def open_storage(settings: Settings) -> Storage:
    """A storage backend for ``settings`` (not yet started).

    The file and database stores keep records at rest, so they get the key-encryption
    keys of the settings (:func:`~limit_graph.core.kek.load_keks`: in prod mode they must
    be given); the memory store holds nothing at rest and needs none.

    >>> from limit_graph.core.settings import load_settings
    >>> open_storage(load_settings(environ={}, storage__type="memory")).kind
    'memory'
    """
    kind = settings.storage.type
    if kind == "memory":
        from limit_graph.storage.memory import MemoryStorage

        return MemoryStorage()
    keks = load_keks(settings.encryption, home=settings.home, mode=settings.mode)
    refresh_s = settings.encryption.key_refresh_s
    if kind == "file":
        from limit_graph.storage.file import FileStorage

        return FileStorage(settings.file_storage_path, keks=keks, key_refresh_s=refresh_s)
    from limit_graph.storage.database import DatabaseStorage

    return DatabaseStorage(
        settings.database_url,
        keks=keks,
        key_refresh_s=refresh_s,
        shared_queue=settings.shared_queue,
        pool_size=settings.storage.pool_size,
        max_overflow=settings.storage.max_overflow,
    )
