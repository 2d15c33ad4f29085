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
from limit_graph.blocks.quantum import (
    AerTarget,
    FakeDeviceTarget,
    QuantumTarget,
    TargetInfo,
    resolve_target,
)
from limit_graph.blocks.quantum.ibm import IBMQuantumCredentials, IBMRuntimeTarget

__all__ = [
    "RUNNER_CREDENTIALS_BLOCK",
    "AerTarget",
    "BackendInstanceBlock",
    "FakeDeviceTarget",
    "IBMQuantumCredentials",
    "IBMRuntimeTarget",
    "QuantumTarget",
    "RunnerCredentials",
    "TargetInfo",
    "block_document_name",
    "block_from_instance",
    "instance_from_block",
    "resolve_target",
    "runner_endpoint",
]
