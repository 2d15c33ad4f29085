"""``limit_graph.client``: the typed REST client of LIMIT-Graph, sync and async.

:class:`LimitClient` and :class:`AsyncLimitClient` have the same methods; they return
the platform's own records (:class:`~limit_graph.core.models.Session`,
:class:`~limit_graph.core.models.Execution`,
:class:`~limit_graph.core.models.WorkflowRun`) and raise :class:`LimitAPIError` (a
subclass per status, with the problem document's ``errors``) when the server says no.
It imports nothing of the platform but ``limit_graph.core``, so flows, runners and
notebooks can use it without the server's dependencies.

>>> # from pathlib import Path
>>> # from limit_graph.client import LimitClient, InvalidInputError
>>> # with LimitClient("http://127.0.0.1:8080", api_key="...") as client:
>>> #     check = client.validate_workflow(Path("bell-sweep.yaml"))
>>> #     if not check.valid:
>>> #         for problem in check.errors: print(problem.step, problem.field, problem.msg)
>>> #     session = client.create_session("bell-sweep")
>>> #     done = client.execute(session.id, "echo", {"hello": "world"})
>>> #     run = client.run_workflow(session.id, Path("bell-sweep.yaml"), {"shots": 500},
>>> #                               wait=True, timeout=600)
>>> #     png = client.get_artifact(session.id, run.id, "plot.png").content
"""

from limit_graph.client.aio import AsyncLimitClient
from limit_graph.client.calls import Id, WorkflowSpec
from limit_graph.client.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidInputError,
    LimitAPIError,
    LimitClientError,
    LimitConnectionError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnexpectedResponse,
    WaitTimeout,
    error_for,
)
from limit_graph.client.paging import Page, apaginate, paginate
from limit_graph.client.records import (
    Agent,
    ArchiveSummary,
    Artifact,
    ArtifactInfo,
    SessionStatus,
    SpecProblem,
    Validation,
    WorkflowEdge,
    WorkflowNode,
)
from limit_graph.client.sse import parse_sse
from limit_graph.client.sync import LimitClient
from limit_graph.client.workflow import Condition, Map, Params, Ref, StepRef, Workflow

__all__ = [
    "Agent",
    "ArchiveSummary",
    "Artifact",
    "ArtifactInfo",
    "AsyncLimitClient",
    "AuthenticationError",
    "BadRequestError",
    "Condition",
    "ConflictError",
    "Id",
    "InvalidInputError",
    "LimitAPIError",
    "LimitClient",
    "LimitClientError",
    "LimitConnectionError",
    "Map",
    "NotFoundError",
    "Page",
    "Params",
    "PermissionDeniedError",
    "RateLimitError",
    "Ref",
    "ServerError",
    "SessionStatus",
    "SpecProblem",
    "StepRef",
    "UnexpectedResponse",
    "Validation",
    "WaitTimeout",
    "Workflow",
    "WorkflowEdge",
    "WorkflowNode",
    "WorkflowSpec",
    "apaginate",
    "error_for",
    "paginate",
    "parse_sse",
]
