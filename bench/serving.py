"""A server in a child process for a bench to drive: started, waited for, stopped."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["serve"]

START_TIMEOUT_S = 120


@contextmanager
def serve(
    command: list[str], port: int, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until its ``GET /health`` on ``port`` answers 200, yield its process,
    then stop it; a server that exits or does not answer in time is a :class:`RuntimeError` with
    the end of what it printed."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"{command[0]} exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
