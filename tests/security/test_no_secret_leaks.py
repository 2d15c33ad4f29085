"""No secret in any response or any log record.

A scripted tour of the platform over real HTTP -- a tenant, its admin, users and a service
account, keys (one scoped and expiring, one revoked), tokens (form and Basic), a signing
key rotation, policies, sessions with executions (inline, on a runner, failing), a
workflow, grants, an event stream, an archive, and the failures on the way (bad secrets,
forged and revoked credentials, denials, bad bodies) -- runs while every response's body
and headers and every log record of every logger at DEBUG (as ``LOG_LEVEL=DEBUG`` logs)
are kept.  Then each secret
is looked for in all of them, in every form it has: API keys and client secrets, their
HMAC digests (computed, and read back from the store), the server secret, the signing
keys' private halves (PEM, its body, the stored ciphertext, the JWK private members),
and every access token.  A secret may appear once: in the one answer that hands it out.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.core.logs import configure_logging
from limit_graph.core.settings import Settings
from limit_graph.governance.authn import API_KEY_PURPOSE
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import CLIENT_SECRET_PURPOSE
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.forged_tokens import replace_payload
from tests.security.cast import NOOP_POLICY, WORKFLOW
from tests.security.stored import Stored, read_stored_of

DRIVER_LOGGERS = ("aiosqlite",)
"""Loggers of database drivers that log each statement's parameters at DEBUG or INFO,
which ``configure_logging`` holds at WARNING."""


@dataclass
class Seen:
    """Everything the tour got back and everything logged meanwhile."""

    answers: list[tuple[str, str]] = field(default_factory=list)
    """(what was asked, the response's status line, headers and body)"""
    records: list[logging.LogRecord] = field(default_factory=list)
    handed_out: dict[str, int] = field(default_factory=dict)
    """What each secret the API handed out is, and the index of the answer that did."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Each secret in the clear, by what it is."""


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def every_log_record(records: list[logging.LogRecord]) -> Iterator[None]:
    """Every record kept that ``LOG_LEVEL=DEBUG`` logs: logging configured as the server
    configures it (``configure_logging``: the root at DEBUG, the loggers it holds
    quieter kept so), and loggers that do not propagate to the root heard too; for a
    whole module rather than one test."""
    root = logging.getLogger()
    named = (
        "alembic",
        "httpx",
        "uvicorn.access",
        "great_expectations",
        *DRIVER_LOGGERS,
        "psycopg",
        "sqlalchemy.engine",
    )
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in named})
    configure_logging("DEBUG", json_format=False)
    apart = [
        logger
        for logger in root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    handler = _Keep(records)
    for logger in (root, *apart):
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in apart:
            logger.removeHandler(handler)
        handlers, level, levels = saved
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, kept in levels.items():
            logging.getLogger(name).setLevel(kept)


class Tour:
    def __init__(self, http: httpx.Client, seen: Seen) -> None:
        self.http = http
        self.seen = seen

    def call(self, method: str, url: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        response = self.http.request(method, url, headers=headers, **kw)
        head = "".join(f"{k}: {v}\n" for k, v in response.headers.items())
        self.seen.answers.append(
            (f"{method} {url}", f"{response.status_code}\n{head}{response.text}")
        )
        return response

    def ok(self, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
        response = self.call(method, url, headers, **kw)
        assert response.status_code < 300, (method, url, response.text)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return response.json() if is_json else response.text

    def failing(
        self, status: int, method: str, url: str, headers: dict[str, str], **kw: Any
    ) -> None:
        response = self.call(method, url, headers, **kw)
        assert response.status_code == status, (method, url, response.text)

    def handed(self, what: str, secret: str) -> None:
        self.seen.secrets[what] = secret
        self.seen.handed_out[what] = len(self.seen.answers) - 1

    def member(
        self, admin: dict[str, str], name: str, roles: list[str], kind: str = "user"
    ) -> tuple[str, dict[str, str]]:
        body = {"name": name, "tenant": "team-a", "kind": kind, "roles": roles}
        made = self.ok("POST", "/principals", admin, json=body)
        if made.get("client_secret"):
            self.handed(f"{name}'s client secret", made["client_secret"])
        key = self.ok("POST", "/keys", admin, json={"principal_id": made["id"]})
        self.handed(f"{name}'s API key", key["key"])
        return made["id"], {"X-API-Key": key["key"]}


def run_tour(http: httpx.Client, home: Path, seen: Seen) -> None:
    tour = Tour(http, seen)
    platform_admin = {"X-API-Key": ADMIN_KEY}
    seen.secrets["the platform admin's key"] = ADMIN_KEY
    seen.secrets["the runners' key"] = (home / "runner.key").read_text().strip()
    seen.secrets["the server secret"] = (home / "auth.secret").read_text().strip()

    # The platform admin makes a tenant, its admin and a runner service account.
    tour.ok("POST", "/tenants", platform_admin, json={"name": "team-a"})
    body = {"name": "boss", "tenant": "team-a", "kind": "user", "roles": ["admin"]}
    boss_id = tour.ok("POST", "/principals", platform_admin, json=body)["id"]
    key = tour.ok("POST", "/keys", platform_admin, json={"principal_id": boss_id})
    tour.handed("the tenant admin's key", key["key"])
    admin = {"X-API-Key": key["key"]}
    body = {"name": "runner-1", "tenant": "default", "kind": "service", "roles": ["runner"]}
    runner_made = tour.ok("POST", "/principals", platform_admin, json=body)
    tour.handed("the runner's client secret", runner_made["client_secret"])
    runner_key = tour.ok("POST", "/keys", platform_admin, json={"principal_id": runner_made["id"]})
    tour.handed("the runner's API key", runner_key["key"])
    runner = {"X-API-Key": runner_key["key"]}

    # The tenant admin makes its people, a service account and their keys.
    _, author = tour.member(admin, "ada", ["author"])
    viewer_id, viewer = tour.member(admin, "vic", ["viewer"])
    service_id, service_key = tour.member(admin, "ci-bot", ["author"], kind="service")
    scoped = tour.ok(
        "POST",
        "/keys",
        admin,
        json={
            "principal_id": viewer_id,
            "scopes": ["session.read"],
            "expires_at": "2999-01-01T00:00:00Z",
        },
    )
    tour.handed("a scoped key", scoped["key"])
    listed = tour.ok("GET", "/principals", admin)["items"]
    client = next(p for p in listed if p["id"] == service_id)
    client_secret = seen.secrets["ci-bot's client secret"]

    # Tokens: from the form, and from HTTP Basic.
    form = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client_secret,
    }
    issued = tour.ok("POST", "/auth/token", {}, data=form)
    tour.handed("a token", issued["access_token"])
    basic = base64.b64encode(f"{client['client_id']}:{client_secret}".encode()).decode()
    issued_basic = tour.ok(
        "POST",
        "/auth/token",
        {"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials"},
    )
    tour.handed("a token from Basic", issued_basic["access_token"])
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}

    # Work: sessions, executions inline, on a runner and failing, a workflow, grants.
    sid = tour.ok("POST", "/sessions", author, json={"name": "tour"})["id"]
    tour.ok("POST", f"/sessions/{sid}/execute", author, json={"agent": "echo", "inputs": {"n": 1}})
    tour.ok(
        "POST",
        f"/sessions/{sid}/execute",
        author,
        json={"agent": "fail", "inputs": {"message": "boom"}},
    )
    queued = tour.ok(
        "POST",
        f"/sessions/{sid}/execute",
        author,
        json={"agent": "echo", "inputs": {"n": 2}, "backend": "remote", "wait_s": 0},
    )
    claim = tour.ok(
        "POST", "/runners/claim", runner, json={"runner_id": "r", "pool": "remote", "wait_s": 5}
    )
    (lease,) = claim["leases"]
    tour.ok(
        "POST",
        "/runners/heartbeat",
        runner,
        json={"runner_id": "r", "pool": "remote", "executions": [queued["id"]]},
    )
    result = {
        "execution_id": queued["id"],
        "attempt": lease["attempt"],
        "state": "succeeded",
        "result": {"n": 2},
    }
    tour.ok("POST", "/runners/report", runner, json={"runner_id": "r", "results": [result]})
    tour.ok("POST", f"/sessions/{sid}/execute", author, json={"workflow": WORKFLOW, "wait_s": 30})
    tour.ok(
        "POST",
        f"/sessions/{sid}/grants",
        author,
        json={"principal_id": viewer_id, "permission": "read"},
    )
    for path in ("", "/results", "/status", "/provenance", "/grants", "/workflows"):
        tour.ok("GET", f"/sessions/{sid}{path}", viewer)
    with http.stream("GET", f"/sessions/{sid}/events", headers=viewer) as stream:
        lines = []
        for line in stream.iter_lines():
            lines.append(line)
            if len(lines) >= 12:
                break
        seen.answers.append(("GET events", "\n".join(lines)))
    token_sid = tour.ok("POST", "/sessions", bearer, json={})["id"]
    tour.ok(
        "POST",
        f"/sessions/{token_sid}/execute",
        service_key,
        json={"agent": "echo", "inputs": {"n": 3}},
    )
    tour.ok("POST", f"/sessions/{token_sid}/archive", bearer)
    tour.ok("GET", f"/sessions/{token_sid}/archive", bearer)

    # Policies, listings, a rotation.
    tour.ok("PUT", "/policies/tour-policy", admin, json={"text": NOOP_POLICY})
    tour.ok("GET", "/policies", admin)
    tour.ok("GET", "/keys", admin)
    tour.ok("GET", "/principals", admin)
    tour.ok("POST", "/auth/signing-keys/rotate", platform_admin)
    tour.ok("POST", "/data-keys/rotate", platform_admin)
    tour.ok("GET", "/data-keys", platform_admin)
    tour.ok("GET", "/.well-known/jwks.json", {})
    tour.ok("POST", "/maintenance/verify-ledger", runner)

    # Failures on the way.
    tour.failing(
        401, "POST", "/auth/token", {}, data={**form, "client_secret": client_secret[:-2] + "xx"}
    )
    tour.failing(
        401,
        "GET",
        "/sessions",
        {"Authorization": f"Bearer {replace_payload(issued['access_token'], roles=['admin'])}"},
    )
    tour.failing(401, "GET", "/sessions", {"X-API-Key": author["X-API-Key"][:-3] + "abc"})
    tour.failing(401, "GET", "/sessions", {"X-API-Key": author["X-API-Key"], **bearer})
    tour.failing(
        403, "POST", f"/sessions/{sid}/execute", viewer, json={"agent": "echo", "inputs": {}}
    )
    tour.failing(403, "POST", "/sessions", {"X-API-Key": scoped["key"]}, json={})
    bad = {"name": "BAD NAME", "tenant": "team-a", "kind": "user"}
    tour.failing(422, "POST", "/principals", admin, json=bad)
    json_headers = {**author, "Content-Type": "application/json"}
    tour.failing(400, "POST", "/sessions", json_headers, content=b'{"config": {')
    tour.failing(404, "GET", "/sessions/00000000-0000-4000-8000-000000000000", author)
    key_id = author["X-API-Key"].split("_")[1]
    tour.ok("DELETE", f"/keys/{key_id}", admin)
    tour.failing(401, "GET", "/sessions", author)
    tour.ok("DELETE", f"/principals/{service_id}", admin)
    tour.failing(401, "GET", "/sessions", bearer)
    tour.failing(401, "POST", "/auth/token", {}, data=form)
    tour.ok("GET", "/metrics", {})
    tour.ok("GET", "/health", {})


def secret_forms(seen: Seen, stored: Stored, server: ServerSecret) -> dict[str, list[str]]:
    """Each secret and every form it may leak in, by what it is."""
    forms: dict[str, list[str]] = {}
    for what, value in seen.secrets.items():
        found = forms[what] = [value]
        purpose = CLIENT_SECRET_PURPOSE if "client secret" in what else API_KEY_PURPOSE
        if what != "the server secret":
            found.append(server.digest(value, purpose=purpose))
        if value.startswith("lgk_") and value.count("_") >= 2:
            found.append(value.split("_", 2)[2])  # the secret part after the public id
        if what.startswith("a token"):
            found.append(value.rsplit(".", 1)[1])  # its signature
    for n, digest in enumerate(stored.key_digests):
        forms[f"stored API key digest {n}"] = [digest]
    for n, digest in enumerate(stored.client_secret_digests):
        forms[f"stored client secret digest {n}"] = [digest]
    for key in stored.signing:
        forms[f"signing key {key.kid}"] = key.private_forms()
    for kid, key_forms in stored.data_keys.items():
        forms[f"data key {kid}"] = key_forms
    return forms


def record_text(record: logging.LogRecord) -> str:
    """All a record holds: its message, arguments, extra fields and exception."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = f"{record.msg!r} % {record.args!r}"
    parts = [record.name, message, repr(record.args), repr(record.__dict__)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


@dataclass
class Tourist:
    seen: Seen
    forms: dict[str, list[str]]


@pytest.fixture(scope="module")
def toured(http: httpx.Client, settings: Settings) -> Tourist:
    seen = Seen()
    with every_log_record(seen.records):
        run_tour(http, settings.home, seen)
    stored = asyncio.run(read_stored_of(settings))
    assert len(stored.signing) >= 2 and stored.key_digests and stored.client_secret_digests
    assert len(stored.data_keys) >= 3, "the KEK and both data keys (before and after rotating)"
    return Tourist(seen, secret_forms(seen, stored, ServerSecret.from_settings(settings)))


def leaks(
    forms: dict[str, list[str]], places: list[tuple[str, str]], handed_out: dict[str, int]
) -> list[str]:
    found = []
    for what, variants in forms.items():
        for variant in variants:
            for index, (where, text) in enumerate(places):
                if variant in text and handed_out.get(what) != index:
                    found.append(f"{what} in {where}")
    return found


def test_no_response_holds_a_secret_but_the_one_that_hands_it_out(toured: Tourist) -> None:
    seen = toured.seen
    assert len(seen.answers) > 50 and len(seen.handed_out) >= 10
    assert leaks(toured.forms, seen.answers, seen.handed_out) == []


def _log_places(records: list[logging.LogRecord], drivers: bool) -> list[tuple[str, str]]:
    return [
        (f"log record {record.name}:{record.lineno} {record.msg!r:.80}", record_text(record))
        for record in records
        if record.name.startswith(DRIVER_LOGGERS) == drivers
    ]


def test_no_log_record_holds_a_secret(toured: Tourist) -> None:
    places = _log_places(toured.seen.records, drivers=False)
    assert len(places) > 100  # the access log at least, one record per request
    assert leaks(toured.forms, places, {}) == []


def test_no_database_driver_log_record_holds_a_secret(toured: Tourist) -> None:
    """The drivers log each statement's parameters below WARNING, which configure_logging
    keeps them above, even at LOG_LEVEL=DEBUG."""
    places = _log_places(toured.seen.records, drivers=True)
    assert leaks(toured.forms, places, {}) == []
    assert not [
        r for r in toured.seen.records if r.name.startswith(("aiosqlite", "sqlalchemy.engine"))
    ]
