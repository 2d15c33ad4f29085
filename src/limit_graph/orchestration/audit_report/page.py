"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing
fetched (its own Content-Security-Policy forbids both), every value escaped.

A page is built from parts that each return HTML text; values from the ledger pass
through :func:`_t` (``html.escape``) on their way in and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from limit_graph.core.models import ProvenanceEntry
from limit_graph.orchestration.audit_report.plots import activity_svg, kind_of, palette
from limit_graph.orchestration.audit_report.reading import (
    Recheck,
    SessionView,
    outcome,
    resource,
)

__all__ = ["MAX_ROWS", "page"]

MAX_ROWS = 1000
"""Rows of a session's table; past them the page says how many the export has more."""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--ink); background: #f6f8fa; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { margin: 0 0 4px; font-size: 28px; }
h2 { margin: 0 0 8px; font-size: 21px; }
h3 { margin: 20px 0 6px; font-size: 16px; }
.origin { margin: 0 0 16px; color: var(--muted); }
code, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
.hash { word-break: break-all; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0 0 16px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.verdict { padding: 12px 16px; border-radius: 6px; border: 1px solid; font-size: 17px; margin: 0; }
.verdict.ok { color: var(--ok); background: var(--ok-bg); border-color: var(--ok); }
.verdict.bad { color: var(--bad); background: var(--bad-bg); border-color: var(--bad); }
.note { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: 16px 20px; margin: 20px 0; }
.meta { color: var(--muted); margin: 0 0 8px; }
.tag { display: inline-block; background: #eef1f4; border-radius: 10px; padding: 0 8px;
  margin-right: 4px; font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.outcome-bad { color: var(--bad); font-weight: 600; }
.outcome-ok { color: var(--ok); }
svg.plot { width: 100%; height: auto; max-width: 760px; display: block; margin: 8px 0; }
svg .grid { stroke: #e6eaef; }
svg .tick, svg .legend { font-size: 11px; fill: var(--muted); }
svg .plot-title { font-size: 13px; fill: var(--ink); }
pre { background: #f6f8fa; padding: 8px 12px; overflow-x: auto; font-size: 13px; }
footer { color: var(--muted); font-size: 13px; padding-bottom: 32px; }
"""
_BAD = {"denied", "failed", "cancelled", "refused", "differs", "deleted", "timed_out"}
_OK = {"succeeded", "completed", "reproduced", "active", "archived"}


def _t(value: object) -> str:
    """A value as HTML text: escaped, quotes included."""
    return escape(str(value), quote=True)


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return "-"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    """A definition list; the values are HTML already."""
    items = "".join(f"<dt>{_t(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl class="facts">{items}</dl>'


def _header(document: Mapping[str, Any], check: Recheck) -> str:
    checkpoint = document.get("checkpoint")
    filters = {k: v for k, v in (document.get("filters") or {}).items() if v is not None}
    origin = str(checkpoint["note"]).split("\n", 1)[0] if checkpoint else "-"
    scope = "every tenant and the platform's own" if "tenant" not in filters else ""
    shown = ", ".join(f"{k} = {v}" for k, v in filters.items()) or "none"
    facts = [
        ("Checkpoint size", f"{checkpoint['tree_size']:,} entries" if checkpoint else "-"),
        (
            "Root hash",
            f'<span class="hash">{_t(checkpoint["root_hash"])}</span>' if checkpoint else "-",
        ),
        ("Signed at", _t(_when(checkpoint["timestamp"])) if checkpoint else "-"),
        ("Signing key", f"<code>{_t(check.key)}</code>" if check.key else "-"),
        ("Exported at", _t(_when(document.get("exported_at")))),
        ("Filters", _t(shown) + (f" ({_t(scope)})" if scope else "")),
        ("Entries", f"{len(check.entries):,}"),
    ]
    key_note = (
        "The checkpoint's signature was checked with the key you gave."
        if check.pinned
        else "The checkpoint's signature was checked with the key the export carries; "
        "give the key you keep (limit audit export --public-key) to check it against that."
    )
    sentence = check.sentence[:1].upper() + check.sentence[1:]
    server = ""
    if check.server_summary is not None:
        agrees = "agrees" if check.server_agrees else "does not agree"
        server = f" The server, exporting, found: {_t(check.server_summary)} ({agrees})."
    return (
        "<header><h1>Audit report</h1>"
        f'<p class="origin">Log <code>{_t(origin)}</code></p>{_facts(facts)}'
        f'<p class="verdict {"ok" if check.ok else "bad"}" id="verification">'
        f"{'&#10003;' if check.ok else '&#10007;'} {_t(sentence)}</p>"
        f'<p class="note">{_t(key_note)}{server}</p></header>'
    )


def _outcome_cell(text: str) -> str:
    style = "outcome-bad" if text in _BAD else "outcome-ok" if text in _OK else ""
    return f'<td class="{style}">{_t(text)}</td>' if style else f"<td>{_t(text)}</td>"


def _trail(entries: Sequence[ProvenanceEntry]) -> str:
    rows = "".join(
        f"<tr><td>{_t(_when(e.timestamp))}</td><td>{_t(e.actor)}</td><td><code>{_t(e.action)}"
        f"</code></td><td>{_t(resource(e))}</td>{_outcome_cell(outcome(e))}"
        f'<td class="n">{e.index}</td></tr>'
        for e in entries[:MAX_ROWS]
    )
    more = len(entries) - MAX_ROWS
    tail = (
        f'<p class="note">{more:,} more entries are in the export (its JSON has every one).</p>'
        if more > 0
        else ""
    )
    return (
        "<h3>Who did what when</h3><table><thead><tr><th>Time</th><th>Actor</th>"
        "<th>Action</th><th>Resource</th><th>Outcome</th><th>Entry</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{tail}"
    )


def _policies(view: SessionView) -> str:
    uses = view.policy_uses()
    if not uses:
        return (
            "<h3>Policies that decided</h3><p>No policy decision is recorded in these entries.</p>"
        )
    rows = "".join(
        f"<tr><td><code>{_t(u.policy_id)}</code></td>{_outcome_cell(u.decided)}"
        f'<td>{_t(u.by)}</td><td class="n">{u.times}</td><td>{_t(_when(u.last))}</td>'
        f"<td>{_t(u.detail or '')}</td></tr>"
        for u in uses
    )
    return (
        "<h3>Policies that decided</h3><table><thead><tr><th>Policy</th><th>Decided</th>"
        "<th>On</th><th>Times</th><th>Last</th><th>Detail</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _points(entries: Iterable[ProvenanceEntry]) -> list[tuple[datetime, str]]:
    return [(e.timestamp, kind_of(e.action)) for e in entries]


def _session(view: SessionView, n: int, colours: Mapping[str, str]) -> str:
    if view.session_id is None:
        title, css = "Outside any session", "others"
        meta = "Entries of no session: principals, keys, policies, quotas, denials of routes."
    else:
        title, css = f"Session {view.name or view.session_id}", "session"
        tags = "".join(f'<span class="tag">{_t(tag)}</span>' for tag in view.tags)
        meta = (
            f"<code>{_t(view.session_id)}</code> · tenant {_t(view.tenant or '-')} · owner "
            f"{_t(view.owner or '-')} · {_t(view.state or 'state unknown')}"
            + (f" · {tags}" if tags else "")
        )
    plot = activity_svg(
        _points(view.entries), title=f"Activity of {title}", colours=colours, ident=f"plot-{n}"
    )
    return (
        f'<section class="{css}" id="{_t(view.anchor)}"><h2>{_t(title)}</h2>'
        f'<p class="meta">{meta}</p>{plot}{_trail(view.entries)}{_policies(view)}</section>'
    )


def _overview(views: Sequence[SessionView], check: Recheck, colours: Mapping[str, str]) -> str:
    plot = activity_svg(
        _points(check.entries), title="All exported activity", colours=colours, ident="plot-0"
    )
    rows = "".join(
        f'<tr><td><a href="#{_t(v.anchor)}">{_t(v.name or v.session_id or "outside sessions")}'
        f'</a></td><td class="n">{len(v.entries):,}</td>'
        f"<td>{_t(_when(v.entries[0].timestamp))}</td><td>{_t(_when(v.entries[-1].timestamp))}"
        f'</td><td class="n">{sum(1 for e in v.entries if outcome(e) == "denied")}</td></tr>'
        for v in views
    )
    table = (
        "<table><thead><tr><th>Session</th><th>Entries</th><th>First</th><th>Last</th>"
        f"<th>Denials</th></tr></thead><tbody>{rows}</tbody></table>"
        if views
        else "<p>The export holds no entries.</p>"
    )
    return f'<section id="overview"><h2>Activity</h2>{plot}{table}</section>'


def _how_to_check(document: Mapping[str, Any]) -> str:
    checkpoint = document.get("checkpoint")
    if not checkpoint:
        return ""
    return (
        '<section id="how-to-check"><h2>Checking it yourself</h2><p>The export carries each '
        "entry's fields, payload and RFC 6962 inclusion proof, and the signed checkpoint "
        "(C2SP tlog-checkpoint) they prove against; docs/provenance.md says how to check "
        f"them by hand. The checkpoint's note:</p><pre>{_t(checkpoint['note'])}</pre>"
        f'<p>Its signer\'s verifier key: <code class="hash">{_t(checkpoint["public_key"])}'
        "</code></p></section>"
    )


def page(
    document: Mapping[str, Any],
    check: Recheck,
    views: Sequence[SessionView],
    *,
    version: str,
) -> str:
    """The whole page."""
    colours = palette([kind_of(e.action) for e in check.entries])
    checkpoint = document.get("checkpoint")
    title = "Audit report" + (f", checkpoint {checkpoint['tree_size']:,}" if checkpoint else "")
    body = "".join(_session(v, n, colours) for n, v in enumerate(views, start=1))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_t(title)}</title><style>{STYLE}</style></head><body>"
        f"{_header(document, check)}<main>{_overview(views, check, colours)}{body}"
        f"{_how_to_check(document)}</main><footer>Made by limit-graph {_t(version)} from an "
        f"export of format {_t(document.get('format', '?'))}.</footer></body></html>\n"
    )
