"""The ``limit`` command starts without importing the API or the database backend: every
command imports them only when it runs one that needs them, so that a client command
(and a test run that calls hundreds of them) does not pay for the server's start."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("limit_graph.api", "limit_graph.storage.database", "limit_graph.cli.api_workers")


def test_importing_the_cli_leaves_the_server_unimported() -> None:
    probe = (
        "import json, sys; import limit_graph.cli.main; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
