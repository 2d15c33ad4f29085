"""The routes of the OpenAPI document, and how the security tests call each one.

The tests walk ``/openapi.json`` rather than a list of their own, so that a route is
covered as soon as it is published.  To call one they need a value for each of its path
parameters (:data:`PATH_PARAMETERS` says what each names) and, when it takes a body, a
body (:data:`BODIES`, valid, so that a call gets past validation to the object it names);
a route needing anything else makes :func:`request_for` fail naming it, and the test with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tests.security.cast import NOOP_POLICY, WORKFLOW, Things, unique

__all__ = [
    "BODIES",
    "PATH_PARAMETERS",
    "QUERY_PARAMETERS",
    "TENANT_OBJECTS",
    "Answer",
    "Body",
    "Operation",
    "Request",
    "document_of",
    "operations",
    "request_for",
    "send",
]

QUERY_PARAMETERS: dict[str, str] = {
    # the ledger's proofs: of its first entry in, and between, trees the world has made
    "index": "0",
    "size": "1",
    "first": "1",
    "second": "1",
    # the lineage of some content: a well-formed hash nothing has (an empty answer)
    "hash": "0" * 64,
}
"""A value for each required query parameter a route has."""

PATH_PARAMETERS: dict[str, str] = {
    "session_id": "a session of the caller's tenant, owned by its author",
    "execution_id": "an execution in that session",
    "run_id": "a finished workflow run in that session",
    "name": "an artifact of that run",
    "grant_id": "a grant on that session",
    "principal_id": "a principal of the tenant",
    "key_id": "an API key of a principal of the tenant",
    "policy_id": "a policy of the tenant's own",
    "scope": "that principal as a quota scope",
    "agent_id": "an agent: the platform's, the same for every tenant",
}
TENANT_OBJECTS = frozenset(PATH_PARAMETERS) - {"name", "agent_id"}
"""The path parameters that name something of one tenant (an artifact's name is only
found through its run, which is)."""


@dataclass(frozen=True)
class Body:
    json: Any = None
    form: dict[str, str] | None = None


BODIES: dict[tuple[str, str], Callable[[Things], Body]] = {
    ("POST", "/sessions"): lambda _: Body({"name": unique("security")}),
    ("POST", "/sessions/restore"): lambda _: Body({"format": "not-a-bundle"}),
    ("PATCH", "/sessions/{session_id}"): lambda _: Body({"name": unique("renamed")}),
    ("POST", "/sessions/{session_id}/execute"): lambda _: Body(
        {"agent": "echo", "inputs": {"n": 2}, "wait_s": 30}
    ),
    ("POST", "/agents/{agent_id}/execute"): lambda t: Body(
        {"inputs": {"n": 3}, "session_id": t.session_id, "wait_s": 30}
    ),
    ("POST", "/runners/claim"): lambda _: Body(
        {"runner_id": "security", "pool": "remote", "wait_s": 0}
    ),
    ("POST", "/runners/heartbeat"): lambda _: Body(
        {"runner_id": "security", "pool": "remote", "executions": []}
    ),
    ("POST", "/runners/report"): lambda _: Body({"runner_id": "security", "results": []}),
    ("POST", "/workflows/validate"): lambda _: Body({"workflow": WORKFLOW}),
    ("POST", "/sessions/{session_id}/workflows/{run_id}/resume"): lambda _: Body({}),
    ("POST", "/auth/token"): lambda t: Body(
        form={
            "grant_type": "client_credentials",
            "client_id": t.client_id,
            "client_secret": t.client_secret,
        }
    ),
    ("POST", "/tenants"): lambda _: Body({"name": unique("tenant")}),
    ("POST", "/principals"): lambda t: Body(
        {"name": unique("made"), "tenant": t.tenant, "kind": "user", "roles": ["viewer"]}
    ),
    ("POST", "/keys"): lambda t: Body({"principal_id": t.principal_id}),
    ("POST", "/sessions/{session_id}/grants"): lambda t: Body(
        {"principal_id": t.principal_id, "permission": "read"}
    ),
    ("PUT", "/policies/{policy_id}"): lambda _: Body({"text": NOOP_POLICY}),
    ("PUT", "/quotas/{scope}"): lambda _: Body({"concurrent": 50}),
}
"""A valid body for each route that takes one, from the caller's tenant's things."""


@dataclass(frozen=True)
class Operation:
    """One method on one path of the document."""

    method: str
    path: str
    parameters: tuple[str, ...]
    takes_body: bool
    streams: bool
    open: bool
    """Whether it needs no credentials (the document lists no security for it)."""
    maxima: Mapping[str, float]
    """The maximum of each bounded numeric query parameter."""
    paged: bool
    required_query: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def changes(self) -> bool:
        """Whether a call may change what its path names (so it gets fresh things)."""
        return self.method != "GET" and bool(self.parameters)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document, in its order."""
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            parameters = operation.get("parameters", [])
            query = [p for p in parameters if p["in"] == "query"]
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    parameters=tuple(re.findall(r"\{(\w+)\}", path)),
                    takes_body="requestBody" in operation,
                    streams="text/event-stream" in content,
                    open=not operation.get("security"),
                    maxima={
                        p["name"]: p["schema"]["maximum"]
                        for p in query
                        if "maximum" in p.get("schema", {})
                    },
                    paged=any(p["name"] == "cursor" for p in query),
                    required_query=tuple(p["name"] for p in query if p.get("required")),
                )
            )
    return found


def document_of(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: Body | None = None
    params: Mapping[str, str] | None = None
    streams: bool = False


def request_for(
    operation: Operation,
    things: Things,
    *,
    values: Mapping[str, str] | None = None,
    body: Body | None = None,
) -> Request:
    """The call of ``operation`` on ``things`` (``values`` override path parameters,
    ``body`` the body); fails naming the route when it is not known how to call it."""
    unknown = [p for p in operation.parameters if p not in PATH_PARAMETERS]
    if unknown:
        raise AssertionError(
            f"{operation}: no value for path parameters {unknown}; say what each names in "
            "tests/security/catalogue.py PATH_PARAMETERS (and make one in cast.py)"
        )
    unknown_query = [q for q in operation.required_query if q not in QUERY_PARAMETERS]
    if unknown_query:
        raise AssertionError(
            f"{operation}: required query parameters {unknown_query} are not known to the "
            "security tests: give each a value in tests/security/catalogue.py QUERY_PARAMETERS"
        )
    params = {q: QUERY_PARAMETERS[q] for q in operation.required_query} or None
    if operation.takes_body and body is None and operation.key not in BODIES:
        raise AssertionError(
            f"{operation} takes a body the security tests do not know: add one to "
            "tests/security/catalogue.py BODIES"
        )
    given = {**things.values(), **(values or {})}
    url = re.sub(r"\{(\w+)\}", lambda m: given[m.group(1)], operation.path)
    if body is None and operation.takes_body:
        body = BODIES[operation.key](things)
    return Request(operation.method, url, body, params=params, streams=operation.streams)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document of an error answer."""
        assert self.headers.get("content-type", "").startswith("application/problem+json"), (
            self.status,
            self.text[:500],
        )
        body: dict[str, Any] = self.json()
        assert {"type", "title", "status", "detail"} <= body.keys(), body
        assert body["status"] == self.status, body
        return body

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:300]!r}>"


def send(http: httpx.Client, request: Request, headers: Mapping[str, str]) -> Answer:
    """Send ``request`` with ``headers``; an event stream that opens is closed at once,
    unread (it never ends by itself)."""
    if request.streams:
        with http.stream(request.method, request.url, headers=dict(headers)) as response:
            text = "" if response.status_code == 200 else response.read().decode()
            return Answer(response.status_code, response.headers, text)
    body = request.body or Body()
    response = http.request(
        request.method,
        request.url,
        json=body.json,
        data=body.form,
        params=request.params,
        headers=dict(headers),
    )
    return Answer(response.status_code, response.headers, response.text)
