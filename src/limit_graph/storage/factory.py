"""Pick the storage backend the settings name."""

from __future__ import annotations

from limit_graph.core.settings import Settings
from limit_graph.storage.base import Storage

__all__ = ["open_storage"]


def open_storage(settings: Settings) -> Storage:
    """A storage backend for ``settings`` (not yet started).

    >>> from limit_graph.core.settings import load_settings
    >>> open_storage(load_settings(environ={}, storage__type="memory")).kind
    'memory'
    """
    kind = settings.storage.type
    if kind == "memory":
        from limit_graph.storage.memory import MemoryStorage

        return MemoryStorage()
    if kind == "file":
        from limit_graph.storage.file import FileStorage

        return FileStorage(settings.file_storage_path)
    from limit_graph.storage.database import DatabaseStorage

    return DatabaseStorage(settings.database_url)
