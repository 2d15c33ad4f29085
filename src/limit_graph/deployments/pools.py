"""The work-pool types the platform registers its pools as (no Prefect import, so the
CLI can name them in its options without loading Prefect).

>>> PoolType("kubernetes") is PoolType.KUBERNETES
True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PoolType"]


class PoolType(StrEnum):
    """``process``: runners run as processes beside their worker (the default);
    ``kubernetes``: each runner is a Kubernetes Job (:mod:`~limit_graph.deployments.kubernetes`)."""

    PROCESS = "process"
    KUBERNETES = "kubernetes"
