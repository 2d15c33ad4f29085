"""Workflows: DAGs of agent steps written as YAML or JSON, validated before they run.

The spec (:mod:`.spec`), how it is read (:mod:`.loading`) and validated
(:mod:`.validation`, :mod:`.wiring`, :mod:`.schemas`), its graph (:mod:`.graph`),
and what a run needs to wire steps together: references (:mod:`.references`) and
``when`` expressions (:mod:`.expressions`).  ``docs/workflows.md`` is the reference
for authors.

>>> from limit_graph.core.agents import AgentRegistry
>>> registry = AgentRegistry.from_entry_points()
>>> valid = validate_workflow({"name": "one", "steps": [{"id": "a", "agent": "echo"}]},
...                           registry)
>>> valid.graph.to_json()["nodes"][0]["agent"], len(valid.sha256)
('echo', 64)
"""

from limit_graph.core.workflows.expressions import (
    Expression,
    ExpressionError,
    evaluate_when,
    parse_when,
)
from limit_graph.core.workflows.graph import GraphNode, WorkflowGraph
from limit_graph.core.workflows.loading import load_workflow
from limit_graph.core.workflows.params import matches_type
from limit_graph.core.workflows.problems import (
    WorkflowInvalid,
    WorkflowRuntimeError,
    pointer,
    pointer_parts,
)
from limit_graph.core.workflows.references import (
    Reference,
    ReferenceSyntaxError,
    Scope,
    parse_template,
    references,
    resolve,
)
from limit_graph.core.workflows.spec import MapSpec, ParamSpec, ParamType, StepSpec, WorkflowSpec
from limit_graph.core.workflows.validation import ValidWorkflow, validate_workflow

__all__ = [
    "Expression",
    "ExpressionError",
    "GraphNode",
    "MapSpec",
    "ParamSpec",
    "ParamType",
    "Reference",
    "ReferenceSyntaxError",
    "Scope",
    "StepSpec",
    "ValidWorkflow",
    "WorkflowGraph",
    "WorkflowInvalid",
    "WorkflowRuntimeError",
    "WorkflowSpec",
    "evaluate_when",
    "load_workflow",
    "matches_type",
    "parse_template",
    "parse_when",
    "pointer",
    "pointer_parts",
    "references",
    "resolve",
    "validate_workflow",
]
