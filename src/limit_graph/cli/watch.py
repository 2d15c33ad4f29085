"""``limit watch``: a live progress bar fed by the session's event stream."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from limit_graph.cli.client import ApiClient, CliError

__all__ = ["parse_sse", "watch_session"]

UNFINISHED = ("queued", "running")
STATES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events from a line iterator: dicts with ``id``, ``event``, ``data``."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data" and "data" in event:
            event["data"] += "\n" + value
        elif field in ("id", "event", "data"):
            event[field] = value
    if "data" in event:
        yield event


def _summary(states: dict[str, str]) -> str:
    counts = Counter(states.values())
    return "  ".join(f"{s} {counts.get(s, 0)}" for s in STATES)


def watch_session(client: ApiClient, session_id: str, *, follow: bool, console: Console) -> None:
    status: dict[str, Any] = client.request("GET", f"/sessions/{session_id}/status")
    expected = sum(status["counts"].values())
    states: dict[str, str] = {}
    progress = Progress(
        TextColumn("[bold]{task.fields[session]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task("", total=max(expected, 1), session=session_id[:8])
        try:
            with client.stream("GET", f"/sessions/{session_id}/events") as response:
                for event in parse_sse(response.iter_lines()):
                    data = json.loads(event["data"])
                    if event.get("event") == "execution" and "state" in data:
                        states[data["resource_id"]] = data["state"]
                    finished = sum(1 for s in states.values() if s not in UNFINISHED)
                    progress.update(
                        bar,
                        total=max(len(states), 1),
                        completed=finished,
                        description=_summary(states),
                    )
                    caught_up = len(states) >= expected
                    if caught_up and finished == len(states) and not follow:
                        break
                    if data.get("state") in ("archived", "deleted") and not follow:
                        break
        except httpx.TransportError as exc:
            raise CliError(f"event stream from {client.url} broke off: {exc}") from None
    if not states:
        console.print("no executions in this session yet")
