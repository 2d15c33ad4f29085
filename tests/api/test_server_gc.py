"""``limit up``'s server freezes what its start made, so that later garbage collections
do not walk the modules and libraries it loaded; a server a test starts leaves the
test process's collector alone."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

from limit_graph.core.settings import load_settings
from tests.fixtures.live import live_server

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    import uvicorn
    from fastapi import FastAPI
    from limit_graph.api.serving import PlatformServer
    from limit_graph.deployments.server import free_port

    app = FastAPI()
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    server = PlatformServer(config, freeze=sys.argv[1] == "freeze")

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        print(gc.get_freeze_count())
        server.should_exit = True
        await serving

    asyncio.run(main())
    """
)


def _frozen_after_start(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_the_served_process_freezes_what_its_start_made() -> None:
    assert _frozen_after_start("freeze") > 10_000  # modules, FastAPI's, uvicorn's objects
    assert _frozen_after_start("leave") == 0


def test_a_server_in_a_test_process_does_not_freeze_it(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, home=str(tmp_path), storage__url=f"sqlite:///{tmp_path / 'x.db'}"
    )
    before = gc.get_freeze_count()
    with live_server(settings):
        assert gc.get_freeze_count() == before
