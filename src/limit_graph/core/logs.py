"""Structured JSON logs carrying the request, session and execution they belong to.

The ids live in context variables: the API sets ``request_id``, the orchestrator sets
``session_id`` and ``execution_id``, and every record logged meanwhile carries them.

>>> configure_logging("INFO")
>>> with log_context(session_id="0c1d"):
...     logging.getLogger("limit_graph").info("working")  # {"session_id": "0c1d", ...}
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

__all__ = ["CONTEXT_FIELDS", "configure_logging", "log_context"]

CONTEXT_FIELDS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(name, default=None) for name in ("request_id", "session_id", "execution_id")
}


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
        for name, var in CONTEXT_FIELDS.items():
            value = var.get()
            if value is not None:
                setattr(record, name, value)
        return True


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Set context ids for the records logged inside the block."""
    tokens = [(CONTEXT_FIELDS[name], CONTEXT_FIELDS[name].set(v)) for name, v in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def configure_logging(level: str, *, json_format: bool = True) -> None:
    """One handler on the root logger, JSON by default, at ``level`` (``LOG_LEVEL``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if json_format:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quieter = max(logging.WARNING, logging.getLevelName(level))
    # great_expectations logs some 200 INFO lines of its own set-up on first use.
    for noisy in ("alembic", "httpx", "uvicorn.access", "great_expectations"):
        logging.getLogger(noisy).setLevel(quieter)
    # Database drivers log each statement with its parameters (key digests and sealed
    # signing keys among them) at DEBUG or INFO: they never go below WARNING.
    for driver in ("aiosqlite", "psycopg", "sqlalchemy.engine"):
        logging.getLogger(driver).setLevel(quieter)
