"""What ``limit audit witness run`` prints: a line per checkpoint cosigned (one JSON
object per line with ``--json``), and on standard error what it retries and pushes."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from limit_graph.cli.output import print_text, tell

if TYPE_CHECKING:
    from limit_graph.orchestration.witness import Event, Observation

__all__ = ["json_line", "reporter", "when"]


def _ago(age_s: float | None) -> str:
    if age_s is None:
        return "signed at an unknown time"
    if age_s < 120:
        return f"signed {max(age_s, 0):.0f} s ago"
    if age_s < 7200:
        return f"signed {age_s / 60:.0f} min ago"
    return f"signed {age_s / 3600:.1f} h ago"


def when(timestamp: int) -> str:
    """A cosignature's timestamp as an RFC 3339 moment.

    >>> when(1_700_000_000)
    '2023-11-14T22:13:20Z'
    """
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def json_line(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _why(seen: Observation) -> str:
    """What the witness checked the checkpoint against, in words."""
    if seen.status == "trusted-on-first-use":
        return (
            "trusted on first use: nothing earlier to check it against "
            "(--expect-size and --expect-root pin one)"
        )
    if seen.status == "checked-against-pin":
        return f"consistent with the pinned size {seen.previous_size or 0:,}"
    if seen.status == "consistent":
        return f"consistent with size {seen.previous_size or 0:,}"
    return f"unchanged since it was cosigned at {when(seen.cosigned_at)}"


def reporter(*, as_json: bool, once: bool, push_url: str | None) -> Callable[[Event], None]:
    from limit_graph.orchestration.witness import Pushed, Retrying, Seen

    def report(event: Event) -> None:
        if isinstance(event, Retrying):
            tell(
                f"cannot go on: {event.error}; trying again in {event.delay_s:g} s "
                f"({event.failures} in a row)"
            )
        elif isinstance(event, Pushed):
            tell(f"pushed the cosigned checkpoint of size {event.tree_size:,} to {push_url}")
        elif isinstance(event, Seen) and (event.observation.cosigned or once):
            seen = event.observation
            size, root = seen.checkpoint.size, base64.b64encode(seen.checkpoint.root_hash).decode()
            if as_json:
                json_line(
                    {
                        "event": "cosigned" if seen.cosigned else "unchanged",
                        "status": seen.status,
                        "origin": seen.checkpoint.origin,
                        "tree_size": size,
                        "root_hash": root,
                        "previous_size": seen.previous_size,
                        "age_s": event.age_s,
                        "cosigned_at": when(seen.cosigned_at),
                        "note": seen.note,
                    }
                )
                return
            why = _why(seen)
            verb = "cosigned" if seen.cosigned else "seen"
            print_text(f"{verb} size {size:,} root {root} ({_ago(event.age_s)}): {why}")

    return report
