"""Schemathesis against the app's own OpenAPI document, over real HTTP, as three callers.

Every generated request, valid or not, must get a documented status, a body that
matches the documented schema, and never a 5xx.  ``positive_data_acceptance`` is
left out: a request can match the schema and still name an unknown session or agent,
which is rightly a 404 (or, for a viewer, a 403).  The event stream is left out too: it
never ends by design (its own tests read it over HTTP).  The run is the schemathesis CLI
(its pytest plugin does not support this pytest), bounded in examples so that the suite
stays quick; raise ``LIMIT_FUZZ_EXAMPLES`` for a longer hunt.

It runs as the platform admin, who may call every route, and as a viewer and an author
of a tenant (keys made through the platform first), whose answers are mostly 403s and
whose own objects are their tenant's: the three runs go side by side, the two members
with fewer examples and without schemathesis's coverage phase.  That phase walks every
boundary and invalid value of every parameter whatever ``--max-examples`` says (~2,000
cases a caller, two thirds of a member's run); request validation is the same code for
every caller, so it is walked once, as the admin, who gets past authorization to it,
while the members' runs (positive and negative cases both, and the stateful links) check
what their role changes.

Where the time went before: of a single admin run's ~210 s, ~180 s were ``POST
/runners/claim`` long polls waiting out their ``wait_s`` (20 s by default, up to 60 s)
on a pool with no work.  The fuzz server caps the claims' wait at nothing
(``[dispatch] max_claim_wait_s = 0``), so every claim answers at once with what it can
take -- still a documented, schema-checked answer -- and the runs spend their time on
the API instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from limit_graph.core.settings import load_settings
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.live import LiveServer, live_server

pytestmark = pytest.mark.early

EXAMPLES = int(os.environ.get("LIMIT_FUZZ_EXAMPLES", "10"))
MEMBER_EXAMPLES = max(1, EXAMPLES // 2)
"""The viewer's and the author's runs: most of their answers are the same 403."""
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    config = load_settings(
        environ={},
        home=str(home),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{home / 'fuzz.db'}",
        dispatch__max_claim_wait_s=0,
    )
    with live_server(config) as running:
        yield running


def member_keys(url: str) -> dict[str, str]:
    """A viewer's and an author's API keys in a tenant of their own, made through the API."""
    admin = {"X-API-Key": ADMIN_KEY}
    keys = {}
    with httpx.Client(base_url=url, headers=admin, timeout=30) as http:
        assert http.post("/tenants", json={"name": "fuzz"}).status_code == 201
        for role in ("viewer", "author"):
            body = {"name": f"fuzz-{role}", "tenant": "fuzz", "kind": "user", "roles": [role]}
            made = http.post("/principals", json=body)
            assert made.status_code == 201, made.text
            key = http.post("/keys", json={"principal_id": made.json()["id"]})
            assert key.status_code == 201, key.text
            keys[role] = key.json()["key"]
    return keys


def schemathesis_run(url: str, key: str, examples: int, *, coverage: bool = True) -> list[str]:
    phases = "examples,coverage,fuzzing,stateful" if coverage else "examples,fuzzing,stateful"
    return [
        SCHEMATHESIS,
        "run",
        f"{url}/openapi.json",
        "--phases",
        phases,
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        "20261126",
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-path",
        "/sessions/{session_id}/events",
        "--header",
        f"X-API-Key: {key}",
        "--header",
        f"Authorization: Bearer {key}",
        "--request-timeout",
        "90",
        # Nothing waits long now that claims answer at once, but a long poll may still
        # answer after its wait_s (a workflow run's, up to 60 s).
        "--max-response-time",
        "65",
        "--no-color",
    ]


def test_api_conforms_to_its_openapi(fuzz_server: LiveServer, tmp_path: Path) -> None:
    keys = {"admin": ADMIN_KEY, **member_keys(fuzz_server.url)}
    runs = {}
    for caller, key in keys.items():
        examples = EXAMPLES if caller == "admin" else MEMBER_EXAMPLES
        folder = tmp_path / caller
        folder.mkdir()
        runs[caller] = subprocess.Popen(
            schemathesis_run(fuzz_server.url, key, examples, coverage=caller == "admin"),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        outputs = {caller: run.communicate(timeout=900)[0] for caller, run in runs.items()}
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    failed = {caller: outputs[caller] for caller, run in runs.items() if run.returncode != 0}
    assert not failed, "\n".join(f"--- as {c}:\n{out[-15000:]}" for c, out in failed.items())
