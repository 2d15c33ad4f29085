"""Workflow runs: the service the API calls, the driver of one run, its artifacts."""

from limit_graph.orchestration.workflows.artifacts import ARTIFACTS, Artifact
from limit_graph.orchestration.workflows.service import WorkflowService

__all__ = ["ARTIFACTS", "Artifact", "WorkflowService"]
