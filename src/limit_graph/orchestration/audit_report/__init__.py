"""The audit report: an export (:mod:`limit_graph.orchestration.audit_export`) as a page
a person reads rather than the JSON.

One self-contained HTML file: a header with the log's origin, the checkpoint's size, root
and time, and the verification result in plain words -- done again here, from the
export, not taken from the server's word (:func:`~.reading.recheck`); the activity of the
whole export over time; then per session who did what when, the policies that decided
(the ``policy_ids`` of denials and of the pre-task checks executions carry) and its own
activity plot; the entries of no session last.  Inline CSS and SVG plots drawn by
:mod:`.plots`, no script, nothing fetched; every value from the ledger escaped.

>>> html = render_report({"format": "limit-graph.audit-export/1", "checkpoint": None,
...     "entries": [], "verification": {"ok": True, "summary": "nothing to verify"}})
>>> "Nothing to verify: the ledger is empty" in html, "<script" in html
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limit_graph import __version__
from limit_graph.orchestration.audit_report.page import page
from limit_graph.orchestration.audit_report.reading import Recheck, group_sessions, recheck

__all__ = ["Recheck", "Report", "build_report", "recheck", "render_report"]


@dataclass(frozen=True)
class Report:
    """A rendered report and the verification it shows."""

    html: str
    check: Recheck


def build_report(document: Mapping[str, Any], *, trusted_key: str | None = None) -> Report:
    """The report of an export document (its JSON, parsed); the checkpoint's note must
    be signed by ``trusted_key`` (a note verifier key) when one is given, else by the
    key the export carries."""
    check = recheck(document, trusted_key)
    html = page(document, check, group_sessions(check.entries), version=__version__)
    return Report(html, check)


def render_report(document: Mapping[str, Any], *, trusted_key: str | None = None) -> str:
    """The HTML of :func:`build_report`."""
    return build_report(document, trusted_key=trusted_key).html
