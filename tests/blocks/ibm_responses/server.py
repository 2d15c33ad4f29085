"""IBM Cloud and the IBM Quantum Platform API on 127.0.0.1, for the ``ibm:`` target's tests.

qiskit-ibm-runtime derives every host it calls from its ``url`` (``https://cloud.ibm.com``
gives ``iam.``, ``api.global-search-tagging.``, ``globalcatalog.`` and ``quantum.``
``cloud.ibm.com``) and drops the port on the way, so no ``url`` reaches a server on a free
port.  The client also takes an HTTP proxy, as a company network would give it; this
server is that proxy.  It answers for ``*.cloud.test`` itself, by host and path, and
refuses anything else, so a test that would leak to the internet fails instead.

What it serves, and where each shape comes from (the client's own parsers in
``qiskit_ibm_runtime/api`` and ``accounts``, and responses recorded from the live API):

=====================================  ==================================================
``iam.`` ``POST /identity/token``      an IAM access token (a JWT, which the IBM SDK
                                       decodes) for the one API key it knows; any other
                                       key is IAM's ``400 BXNIM0415E``
``api.global-search-tagging.``         the one service instance (its CRN), which the
``POST /v3/resources/search``          client looks up before anything else
``globalcatalog.`` ``GET /api/v1/…``   that instance's plan (name and pricing type)
``quantum.`` ``/api/v1/…``             backends list, configuration, properties and
                                       status of one fake device (its JSON files from
                                       ``qiskit_ibm_runtime.fake_provider``); instance
                                       usage; sessions (create, close, cancel); jobs
                                       (create, status, results, metrics, cancel)
=====================================  ==================================================

Every ``quantum.`` call needs the bearer token IAM gave and the instance's
``Service-CRN``, as the real API does.  Jobs are real work: the submitted executor
program is decoded with IBM's published schemas (``ibm-quantum-schemas``), run on Aer by
the runtime's own local executor (with the device's noise), and encoded back as the
schema's result model, so the client's decoders and the primitives' post-processing run
unchanged.  A job's status moves ``Queued → Running → Completed`` one poll at a time
(``hold_jobs`` keeps it queued until cancelled); its metrics report the queue and usage
seconds the server was given.  ``fail(method, path, status)`` makes a route answer an
error from then on.  Not served: job listing, logs, tags, workloads, dry runs, programs
other than ``executor``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from ibm_quantum_schemas.common import CompressedTensorModel
from ibm_quantum_schemas.executor.version_2_0 import (
    ItemMetadataModel,
    MetadataModel,
    ParamsModel,
    QuantumProgramResultItemModel,
    QuantumProgramResultModel,
)
from qiskit_ibm_runtime.fake_provider import FakeManilaV2
from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import run_quantum_program
from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2
from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions
from qiskit_ibm_runtime.quantum_program.converters.converters_2_0 import (
    passthrough_data_to_2_0,
    quantum_program_from_2_0,
)
from samplomatic.quantum_program import SamplexItem

__all__ = ["DOMAIN", "FakeIBMQuantum", "Request"]

DOMAIN = "cloud.test"
"""The made-up IBM Cloud domain the server answers for (``.test`` never resolves)."""

_TOKEN_SECRET = "fake-iam-signing-key-of-32-bytes!"
_PLAN_ID = "limit-test-plan"
_JOB_PATH = re.compile(r"^/jobs/(?P<id>[^/]+)(?P<rest>/[a-z]+)?$")
_SESSION_PATH = re.compile(r"^/sessions/(?P<id>[^/]+)(?P<rest>/close)?$")
_BACKEND_PATH = re.compile(r"^/backends/(?P<name>[^/]+)/(?P<what>configuration|properties|status)$")


@dataclass(frozen=True)
class Request:
    """One request the server received, as the test reads it back."""

    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class _Job:
    id: str
    backend: str
    program_id: str
    session_id: str | None
    created: datetime
    result: str
    status: str = "Queued"


@dataclass
class _Response:
    status: int
    body: Any = None
    content_type: str = "application/json"


@dataclass
class _State:
    requests: list[Request] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    faults: dict[tuple[str, str], _Response] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)


class FakeIBMQuantum:
    """The server's state and routes; :meth:`running` serves them from a thread.

    ``configuration`` and ``properties`` are the device's JSON as served: a test may
    change them (a recalibration) between calls.

    Args:
        api_key: The one API key IAM accepts.
        device: The fake device served as the instance's only backend.
        queue_seconds: Seconds each job reports between creation and running.
        usage_seconds: QPU seconds each job reports as used.
        hold_jobs: Keep jobs queued until they are cancelled.
    """

    def __init__(
        self,
        *,
        api_key: str = "limit-test-api-key",
        device: type[FakeBackendV2] = FakeManilaV2,
        queue_seconds: float = 12.5,
        usage_seconds: float = 3.0,
        hold_jobs: bool = False,
    ) -> None:
        self.api_key = api_key
        self.crn = (
            "crn:v1:bluemix:public:quantum-computing:us-east:"
            "a/0123456789abcdef0123456789abcdef:00000000-1111-2222-3333-444444444444::"
        )
        self.queue_seconds = queue_seconds
        self.usage_seconds = usage_seconds
        self.hold_jobs = hold_jobs
        self._device = device()
        files = Path(self._device.dirname)
        self.configuration: dict[str, Any] = json.loads(
            (files / self._device.conf_filename).read_text()
        )
        self.properties: dict[str, Any] = json.loads(
            (files / self._device.props_filename).read_text()
        )
        self.backend_name: str = self.configuration["backend_name"]
        self._state = _State()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None

    # -- what tests configure and read ------------------------------------------------

    @property
    def url(self) -> str:
        """The IBM Cloud URL to give the client (its hosts are derived from it)."""
        return f"http://{DOMAIN}"

    @property
    def iam_url(self) -> str:
        """IAM's URL, for ``IAM_URL``: the client's runtime requests read IAM from that
        variable, not from ``url`` (their default is ``https://iam.cloud.ibm.com``)."""
        return f"http://iam.{DOMAIN}"

    @property
    def proxy_url(self) -> str:
        """The proxy URL to give the client: this server."""
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fail(self, method: str, path: str, status: int) -> None:
        """Answer ``method path`` (a ``quantum.`` path below ``/api/v1``) with ``status``."""
        error = {"errors": [{"code": str(status), "message": f"fake {status}"}]}
        with self._lock:
            self._state.faults[(method, path)] = _Response(status, error)

    def calls(self, method: str, path: str | re.Pattern[str]) -> list[Request]:
        """The ``quantum.`` requests (paths below ``/api/v1``) that match, in order."""
        with self._lock:
            found = list(self._state.requests)
        return [
            r
            for r in found
            if r.host == f"quantum.{DOMAIN}"
            and r.method == method
            and (re.fullmatch(path, r.path) if isinstance(path, re.Pattern) else r.path == path)
        ]

    def all_requests(self) -> list[Request]:
        """Every request received, any host, in order."""
        with self._lock:
            return list(self._state.requests)

    def errors(self) -> list[BaseException]:
        """Exceptions the server raised (bugs in it or in a test), answered as 500s."""
        with self._lock:
            return list(self._state.errors)

    def job_status(self, job_id: str) -> str:
        """The job's status as the server holds it (``Queued`` … ``Cancelled``)."""
        with self._lock:
            return self._state.jobs[job_id].status

    def cancel_job(self, job_id: str) -> None:
        """Cancel a job as someone at IBM (the dashboard, another client) would."""
        with self._lock:
            self._state.jobs[job_id].status = "Cancelled"

    @contextmanager
    def running(self) -> Iterator[FakeIBMQuantum]:
        """Serve on a free port of 127.0.0.1 until the block ends."""
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()
            thread.join(timeout=5)
            self._httpd = None

    # -- routing ----------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> _Response:
        """Answer one request; an exception in the fake is kept for the test and is a 500."""
        try:
            return self._route(method, url, headers, raw)
        except Exception as exc:
            with self._lock:
                self._state.errors.append(exc)
            return _Response(500, {"errors": [{"code": "internal", "message": repr(exc)}]})

    def _route(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> _Response:
        parts = urlsplit(url)
        host = (parts.hostname or headers.get("host", "")).split(":")[0]
        body = _parse_body(raw, headers.get("content-type", ""))
        path = parts.path.removeprefix("/api/v1") if host == f"quantum.{DOMAIN}" else parts.path
        request = Request(method, host, path, parse_qs(parts.query), headers, body)
        with self._lock:
            self._state.requests.append(request)
            fault = self._state.faults.get((method, request.path))
        if host == f"iam.{DOMAIN}" and (method, request.path) == ("POST", "/identity/token"):
            return self._token(body)
        if not self._authorized(headers):
            return _Response(401, {"errors": [{"code": "unauthorized", "message": "bad token"}]})
        if host == f"api.global-search-tagging.{DOMAIN}" and request.path == "/v3/resources/search":
            return _Response(200, self._search())
        if host == f"globalcatalog.{DOMAIN}" and request.path == f"/api/v1/{_PLAN_ID}":
            return _Response(200, _catalog_entry())
        if host != f"quantum.{DOMAIN}":
            return _Response(404, {"errors": [{"message": f"no such host {host}"}]})
        if headers.get("service-crn") != self.crn:
            return _Response(403, {"errors": [{"code": "forbidden", "message": "unknown CRN"}]})
        if fault is not None:
            return fault
        return self._runtime(method, request.path, body)

    def _token(self, form: Any) -> _Response:
        if not isinstance(form, dict) or form.get("apikey") != self.api_key:
            return _Response(
                400,
                {
                    "errorCode": "BXNIM0415E",
                    "errorMessage": "Provided API key could not be found.",
                    "context": {"requestType": "incoming.Identity_Token"},
                },
            )
        now = int(time.time())
        token = jwt.encode(
            {"iat": now, "exp": now + 3600, "sub": "iam-ServiceId-limit", "iss": self.iam_url},
            _TOKEN_SECRET,
            algorithm="HS256",
        )
        with self._lock:
            self._state.tokens.add(token)
        return _Response(
            200,
            {
                "access_token": token,
                "refresh_token": "not_supported",
                "token_type": "Bearer",
                "expires_in": 3600,
                "expiration": now + 3600,
                "scope": "ibm openid",
            },
        )

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            return scheme == "Bearer" and token in self._state.tokens

    def _search(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "crn": self.crn,
                    "name": "limit-test-instance",
                    "service_plan_unique_id": _PLAN_ID,
                    "doc": {"extensions": {"quantum": {"allocations": ["limit"]}}},
                    "tags": [],
                }
            ],
            "limit": 100,
        }

    def _runtime(self, method: str, path: str, body: Any) -> _Response:
        if (method, path) == ("GET", "/backends"):
            return _Response(200, {"devices": [self._device_summary()]})
        if (method, path) == ("GET", "/instances/usage"):
            return _Response(200, self._usage())
        if (method, path) == ("POST", "/sessions"):
            return self._create_session(body)
        if (method, path) == ("POST", "/jobs"):
            return self._create_job(body)
        if match := _BACKEND_PATH.match(path):
            return self._backend(method, match["name"], match["what"])
        if match := _SESSION_PATH.match(path):
            return self._session(method, match["id"], match["rest"], body)
        if match := _JOB_PATH.match(path):
            return self._job(method, match["id"], match["rest"])
        return _Response(404, {"errors": [{"code": "not_found", "message": path}]})

    def _device_summary(self) -> dict[str, Any]:
        return {
            "name": self.backend_name,
            "status": {"name": "online", "reason": "available"},
            "qubits": self.configuration["n_qubits"],
            "processor_type": self.configuration.get("processor_type", {}),
            "queue_length": 0,
        }

    def _usage(self) -> dict[str, Any]:
        return {
            "instance_id": self.crn,
            "plan_id": _PLAN_ID,
            "usage_consumed_seconds": 0,
            "usage_limit_seconds": 600,
            "usage_limit_reached": False,
        }

    def _backend(self, method: str, name: str, what: str) -> _Response:
        if method != "GET" or name != self.backend_name:
            return _Response(404, {"errors": [{"code": "not_found", "message": name}]})
        if what == "configuration":
            return _Response(200, self.configuration)
        if what == "properties":
            return _Response(200, self.properties)
        return _Response(
            200,
            {
                "state": True,
                "status": "active",
                "message": "available",
                "length_queue": 0,
                "backend_version": self.configuration["backend_version"],
            },
        )

    def _create_session(self, body: dict[str, Any]) -> _Response:
        session_id = f"sess-{next(self._ids):04d}"
        session = {
            "id": session_id,
            "backend_name": body.get("backend"),
            "mode": body.get("mode"),
            "max_ttl": body.get("max_ttl", 28800),
            "interactive_ttl": 60,
            "state": "open",
            "accepting_jobs": True,
        }
        with self._lock:
            self._state.sessions[session_id] = session
        return _Response(200, session)

    def _session(self, method: str, session_id: str, rest: str | None, body: Any) -> _Response:
        with self._lock:
            session = self._state.sessions.get(session_id)
            if session is None:
                return _Response(404, {"errors": [{"code": "not_found", "message": session_id}]})
            if method == "GET" and rest is None:
                return _Response(200, dict(session))
            if method == "PATCH" and rest is None:
                session.update(body)
                return _Response(204)
            if method == "DELETE" and rest == "/close":
                session.update(state="closed", accepting_jobs=False)
                return _Response(204)
        return _Response(405)

    def _create_job(self, body: dict[str, Any]) -> _Response:
        if body.get("program_id") != "executor":
            message = f"this fake runs only the executor, not {body.get('program_id')!r}"
            return _Response(400, {"errors": [{"code": "bad_request", "message": message}]})
        if body.get("backend") != self.backend_name:
            return _Response(400, {"errors": [{"code": "bad_request", "message": "backend"}]})
        session_id = body.get("session_id")
        with self._lock:
            session = self._state.sessions.get(session_id) if session_id else None
        if session_id and (session is None or not session["accepting_jobs"]):
            message = f"session {session_id} is not accepting jobs"
            return _Response(400, {"errors": [{"code": "bad_request", "message": message}]})
        job = _Job(
            id=f"job-{uuid.uuid4().hex[:20]}",
            backend=self.backend_name,
            program_id="executor",
            session_id=session_id,
            created=datetime.now(UTC),
            result=self._execute(body["params"]),
        )
        with self._lock:
            self._state.jobs[job.id] = job
        return _Response(200, {"id": job.id, "backend": job.backend})

    def _execute(self, params: dict[str, Any]) -> str:
        """Run the executor program on Aer and encode its result as IBM's schema does."""
        model = ParamsModel.model_validate(params)
        program, _ = quantum_program_from_2_0(model)
        for item in program.items:
            if isinstance(item, SamplexItem):
                item.samplex.finalize()
        result = run_quantum_program(self._device, program, SimulatorOptions(seed_simulator=7))
        encoded = QuantumProgramResultModel(
            data=[
                QuantumProgramResultItemModel(
                    results={k: CompressedTensorModel.from_numpy(v) for k, v in item.items()},
                    metadata=ItemMetadataModel(),
                )
                for item in result
            ],
            metadata=MetadataModel(chunk_timing=[]),
            passthrough_data=passthrough_data_to_2_0(program.passthrough_data),
            semantic_role=model.quantum_program.semantic_role,
        )
        return encoded.model_dump_json()

    def _job(self, method: str, job_id: str, rest: str | None) -> _Response:
        with self._lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                return _Response(404, {"errors": [{"code": "not_found", "message": job_id}]})
            if method == "GET" and rest is None:
                return _Response(200, self._poll(job))
            if method == "GET" and rest == "/results":
                if job.status != "Completed":
                    return _Response(409, {"errors": [{"message": f"job is {job.status}"}]})
                return _Response(200, job.result, "text/plain")
            if method == "GET" and rest == "/metrics":
                return _Response(200, self._metrics(job))
            if method == "POST" and rest == "/cancel":
                if job.status in ("Completed", "Failed", "Cancelled"):
                    return _Response(409, {"errors": [{"message": f"job is {job.status}"}]})
                job.status = "Cancelled"
                return _Response(204)
        return _Response(405)

    def _poll(self, job: _Job) -> dict[str, Any]:
        """The job's record; each poll moves an unheld job one state on."""
        record = {
            "id": job.id,
            "backend": job.backend,
            "state": {"status": job.status},
            "status": job.status,
            "program": {"id": job.program_id},
            "created": job.created.isoformat().replace("+00:00", "Z"),
            "session_id": job.session_id,
            "private": False,
            "tags": [],
        }
        if not self.hold_jobs:
            job.status = {"Queued": "Running", "Running": "Completed"}.get(job.status, job.status)
        return record

    def _metrics(self, job: _Job) -> dict[str, Any]:
        def stamp(offset: float) -> str:
            moment = job.created + timedelta(seconds=offset)
            return moment.isoformat().replace("+00:00", "Z")

        timestamps = {"created": stamp(0)}
        if job.status in ("Running", "Completed"):
            timestamps["running"] = stamp(self.queue_seconds)
        if job.status == "Completed":
            timestamps["finished"] = stamp(self.queue_seconds + self.usage_seconds + 0.4)
        done = job.status == "Completed"
        return {
            "timestamps": timestamps,
            "usage": {
                "qpu_charge_time_seconds": self.usage_seconds if done else 0,
                "status": "complete" if done else "pending",
            },
            "qiskit_version": "2.6.2",
        }


def _catalog_entry() -> dict[str, Any]:
    return {
        "id": _PLAN_ID,
        "name": "open",
        "overview_ui": {"en": {"display_name": "Open"}},
        "metadata": {"pricing": {"type": "free"}},
    }


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8")
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(text).items()}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP (proxy-form or origin-form requests) into :meth:`FakeIBMQuantum.handle`."""

    fake: FakeIBMQuantum
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.fake.handle(self.command, self.path, headers, raw)
        if response.body is None:
            payload = b""
        elif isinstance(response.body, str):
            payload = response.body.encode("utf-8")
        else:
            payload = json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        if payload:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def do_CONNECT(self) -> None:
        """HTTPS through the proxy would leave the test network: refuse it."""
        self.send_response(403, "only http://*.cloud.test is served")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read :meth:`FakeIBMQuantum.calls` instead of a log."""
