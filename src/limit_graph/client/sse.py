"""Server-Sent Events, read line by line (the WHATWG event-stream format).

A session's event stream (``GET /sessions/{id}/events``) is small and regular, so a
decoder of our own fits in a few lines and serves the sync and the async client alike.

>>> list(parse_sse(iter(["id: 3", "event: session", 'data: {"a": 1}', "", ": ping", ""])))
[{'id': '3', 'event': 'session', 'data': '{"a": 1}'}]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["SSEDecoder", "parse_sse"]


class SSEDecoder:
    """Feed it lines (without their line break); it hands back each complete event as
    ``{"id"?, "event"?, "data"}``.  Comments (``:`` lines, the keep-alive pings) and
    events without data are dropped."""

    def __init__(self) -> None:
        self._event: dict[str, str] = {}

    def feed(self, line: str) -> dict[str, str] | None:
        """The event this line completes (a blank line ends one), else ``None``."""
        if not line:
            event, self._event = self._event, {}
            return event if "data" in event else None
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data" and "data" in self._event:
            self._event["data"] += "\n" + value
        elif field in ("id", "event", "data"):
            self._event[field] = value
        return None

    def flush(self) -> dict[str, str] | None:
        """The last event, when the stream ended without the blank line after it."""
        return self.feed("")


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """The events in ``lines``: dicts with ``id``, ``event`` and ``data``."""
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
