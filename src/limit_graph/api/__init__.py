"""The REST facade (FastAPI): thin routes over the orchestration services."""

from limit_graph.api.app import create_app

__all__ = ["create_app"]
