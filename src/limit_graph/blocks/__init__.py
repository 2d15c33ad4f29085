"""Prefect blocks: backend targets and their credentials."""

from limit_graph.blocks.backends import (
    RUNNER_CREDENTIALS_BLOCK,
    BackendInstanceBlock,
    RunnerCredentials,
    block_document_name,
    block_from_instance,
    instance_from_block,
    runner_endpoint,
)

__all__ = [
    "RUNNER_CREDENTIALS_BLOCK",
    "BackendInstanceBlock",
    "RunnerCredentials",
    "block_document_name",
    "block_from_instance",
    "instance_from_block",
    "runner_endpoint",
]
