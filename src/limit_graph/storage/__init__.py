"""Storage: one protocol, three backends (memory, file, database), and the ledger."""

from limit_graph.storage.base import SessionFilter, Storage, StorageTransaction
from limit_graph.storage.factory import open_storage
from limit_graph.storage.paging import Page

__all__ = ["Page", "SessionFilter", "Storage", "StorageTransaction", "open_storage"]
