"""Schemathesis against the app's own OpenAPI document, over real HTTP.

Every generated request, valid or not, must get a documented status, a body that
matches the documented schema, and never a 5xx.  ``positive_data_acceptance`` is
left out: a request can match the schema and still name an unknown session or agent,
which is rightly a 404.  The event stream is left out too: it never ends by design
(its own tests read it over HTTP).  The run is the schemathesis CLI
(its pytest plugin does not support this pytest), bounded in examples so that the
suite stays quick; raise ``LIMIT_FUZZ_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from limit_graph.core.settings import load_settings
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.live import LiveServer, live_server

EXAMPLES = os.environ.get("LIMIT_FUZZ_EXAMPLES", "10")
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    config = load_settings(
        environ={},
        home=str(home),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{home / 'fuzz.db'}",
    )
    with live_server(config) as running:
        yield running


def test_api_conforms_to_its_openapi(fuzz_server: LiveServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{fuzz_server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            EXAMPLES,
            "--seed",
            "20261126",
            "--exclude-checks",
            "positive_data_acceptance",
            "--exclude-path",
            "/sessions/{session_id}/events",
            "--header",
            f"X-API-Key: {ADMIN_KEY}",
            "--header",
            f"Authorization: Bearer {ADMIN_KEY}",
            "--request-timeout",
            "90",
            # The runners' claim is a long poll: it may answer after its wait_s (<= 60 s).
            "--max-response-time",
            "65",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
