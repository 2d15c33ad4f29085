"""A server in a child process for a bench to drive: started, waited for, stopped."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

__all__ = ["serve", "wait_serving"]

START_TIMEOUT_S = 120


@contextmanager
def serve(
    command: list[str], port: int, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until its ``GET /health`` on ``port`` answers 200, yield its process,
    then stop it; a server that exits or does not answer in time is a :class:`RuntimeError` with
    the end of what it printed."""
    # What it prints goes to a file: a pipe nobody reads while the bench runs fills up,
    # and then the server's next log line blocks it.
    with tempfile.TemporaryFile() as printed:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=printed
        )
        try:
            wait_serving(process, port, printed, command[0])
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_serving(
    process: subprocess.Popen[bytes], port: int, printed: IO[bytes], name: str
) -> None:
    """Until ``GET /health`` on ``port`` answers 200; a :class:`RuntimeError` with the end
    of ``printed`` when ``process`` exits first, or when it does not answer in time."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            printed.seek(0)
            said = printed.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited: {said}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.2)
