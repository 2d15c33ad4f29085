"""``limit audit export``: the trail with the checkpoint it verifies against, as the
server's JSON or CSV, or as an HTML report rendered here from the JSON.

The export is streamed to its file as it comes (``FILE.part`` until it is complete, so
a failed export leaves nothing behind), the count of entries so far on standard error.
A CSV's checkpoint comes in the response's ``X-Checkpoint-*`` headers: it is written
beside the file, as ``FILE.checkpoint.json``.  The HTML report verifies the export again
here, against ``--public-key`` when given (the key you kept; otherwise the one the
export carries).  Exits 1 when the export does not verify (the file is still written:
it says what failed).

Examples::

    limit audit export --output trail.json
    limit audit export --format csv --output trail.csv      # and trail.csv.checkpoint.json
    limit audit export --format html --session <session-id> --output report.html
    limit audit export --format html --public-key ledger.pub --since 2026-12-01T00:00:00Z

>>> sidecar_path(Path("trail.csv")).name
'trail.csv.checkpoint.json'
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, Protocol

import httpx
import typer

from limit_graph.cli.audit_cmd import audit_app
from limit_graph.cli.client import TIMEOUT_S, ApiClient, CliError, describe
from limit_graph.cli.inputs import key_text, require_uuid
from limit_graph.cli.options import KeyOption, UrlOption
from limit_graph.cli.target import Configuration, Target
from limit_graph.client.errors import error_from_response
from limit_graph.client.transport import client_headers

__all__ = ["ExportFormat", "audit_export", "sidecar_path"]

PROGRESS_EVERY_S = 0.5
_VERIFICATION = '],"verification":'
"""How the JSON export's last line starts (``limit_graph.orchestration.audit_export``)."""


class _Sink(Protocol):
    def write(self, text: str, /) -> int: ...


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"


def sidecar_path(output: Path) -> Path:
    """Where a CSV export's checkpoint is written: beside it."""
    return output.with_name(output.name + ".checkpoint.json")


class Progress:
    """Entries so far, on standard error: rewritten in place on a terminal, a line every
    :data:`PROGRESS_EVERY_S` seconds elsewhere."""

    def __init__(self) -> None:
        self.count = 0
        self._shown_at = time.monotonic()
        self._terminal = sys.stderr.isatty()

    def add(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._shown_at >= PROGRESS_EVERY_S:
            self._shown_at = now
            end = "\r" if self._terminal else "\n"
            sys.stderr.write(f"exporting: {self.count:,} entries so far{end}")
            sys.stderr.flush()

    def done(self, message: str) -> None:
        sys.stderr.write(("\r\x1b[K" if self._terminal else "") + message + "\n")
        sys.stderr.flush()


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[IO[str]]:
    """Standard output, or ``output`` written as ``output.part`` and moved into place
    only when the block ends without an error (else the part file is removed)."""
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    part = output.with_name(output.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="") as file:
            yield file
        os.replace(part, output)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _lines(chunks: Iterable[str]) -> Iterator[str]:
    """The text as lines with their endings, across chunk boundaries."""
    rest = ""
    for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split("\n")
        for line in complete:
            yield line + "\n"
    if rest:
        yield rest


def _json_export(lines: Iterable[str], out: _Sink, progress: Progress, keep: bool) -> Any:
    """Copy the JSON export's lines to ``out``, counting entries; its ``verification``
    (and, with ``keep``, the whole document)."""
    kept: list[str] = []
    last = ""
    for line in lines:
        out.write(line)
        if keep:
            kept.append(line)
        if line.startswith('{"index":'):
            progress.add()
        last = line
    if not last.startswith(_VERIFICATION):
        raise CliError("the export ended before it was complete (the server stopped sending)")
    try:
        if keep:
            return json.loads("".join(kept))
        return {"verification": json.loads(last.rstrip("\n")[len(_VERIFICATION) : -1])}
    except json.JSONDecodeError as exc:
        raise CliError(f"the export is not the JSON document it should be: {exc}") from None


def _csv_export(lines: Iterable[str], out: _Sink, progress: Progress) -> tuple[int, list[int]]:
    """Copy the CSV export to ``out``; its rows' count and the indexes that failed."""

    def copied() -> Iterator[str]:
        for line in lines:
            out.write(line)
            yield line

    rows = csv.reader(copied())
    header = next(rows, None)
    if header is None or "verified" not in header:
        raise CliError("the export is not the CSV it should be: it has no header row")
    index, verified = header.index("index"), header.index("verified")
    failed = []
    for row in rows:
        progress.add()
        if row[verified] != "true":
            failed.append(int(row[index]))
    return progress.count, failed


def _checkpoint(headers: httpx.Headers) -> dict[str, Any] | None:
    if headers.get("x-checkpoint-size", "0") == "0":
        return None
    return {
        "tree_size": int(headers["x-checkpoint-size"]),
        "root_hash": headers["x-checkpoint-root"],
        "timestamp": headers["x-checkpoint-timestamp"],
        "note": base64.b64decode(headers["x-checkpoint-note"]).decode("utf-8"),
        "key_id": headers["x-checkpoint-key-id"],
        "public_key": headers["x-checkpoint-public-key"],
    }


def _unreachable(target: Target, reason: str) -> str:
    """The CLI's message for a server that does not answer (it names where the address
    came from)."""
    api = ApiClient(target.url, target.key, verify=target.verify, origin=target.origin)
    try:
        return api.unreachable(reason)
    finally:
        api.close()


@audit_app.command("export")
def audit_export(
    format_: Annotated[
        ExportFormat,
        typer.Option("--format", help="json (the server's document), csv, or an html report."),
    ] = ExportFormat.JSON,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: standard output).")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's entries.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action's (session.created).")
    ] = None,
    session: Annotated[str | None, typer.Option(help="Only this session's entries.")] = None,
    since: Annotated[str | None, typer.Option(help="From this moment (RFC 3339).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this moment (RFC 3339).")] = None,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="html: the ledger's verifier key (or a file holding it) the checkpoint must "
            "be signed by (default: the key the export carries).",
        ),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Export the trail you may read (your tenant's; the platform admin's: all) with the
    signed checkpoint it verifies against and each entry's inclusion proof.  Exits 1 when
    it does not verify."""
    if public_key is not None and format_ is not ExportFormat.HTML:
        raise CliError("--public-key is for the html report, which verifies the export here")
    trusted = key_text(public_key, "the public key") if public_key else None
    params = {
        "format": "csv" if format_ is ExportFormat.CSV else "json",
        **{
            k: v
            for k, v in (("actor", actor), ("action", action), ("since", since), ("until", until))
            if v is not None
        },
    }
    if session is not None:
        params["session_id"] = require_uuid(session, "session")
    target = Configuration().target(url, api_key)
    progress = Progress()
    http = httpx.Client(
        base_url=target.url,
        headers=client_headers(target.key, None),
        verify=target.verify,
        timeout=TIMEOUT_S,
    )
    try:
        with http.stream("GET", "/audit/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise CliError(describe(error_from_response(response)))
            try:
                ok = _write(format_, response, output, progress, trusted)
            except httpx.TransportError as exc:  # after the answer began: no file is left
                raise CliError(f"the export stopped before it was complete: {exc}") from None
    except httpx.TransportError as exc:
        raise CliError(_unreachable(target, str(exc) or type(exc).__name__)) from None
    finally:
        http.close()
    if not ok:
        raise typer.Exit(1)


def _write(
    format_: ExportFormat,
    response: httpx.Response,
    output: Path | None,
    progress: Progress,
    trusted: str | None,
) -> bool:
    """Write the export as asked; whether it verifies."""
    where = f" to {output}" if output else ""
    lines = _lines(response.iter_text())
    if format_ is ExportFormat.CSV:
        checkpoint = _checkpoint(response.headers)
        with _destination(output) as out:
            count, failed = _csv_export(lines, out, progress)
        if output is not None:
            sidecar = {"checkpoint": checkpoint, "entries": count, "failed": failed}
            sidecar_path(output).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        size = f"checkpoint size {checkpoint['tree_size']:,}" if checkpoint else "no checkpoint"
        state = f"{len(failed):,} do not verify" if failed else "every one verifies"
        progress.done(f"exported {count:,} entries{where} against {size}: {state}")
        return not failed
    if format_ is ExportFormat.JSON:
        with _destination(output) as out:
            verification = _json_export(lines, out, progress, keep=False)["verification"]
        progress.done(f"exported {progress.count:,} entries{where}: {verification['summary']}")
        return bool(verification["ok"])
    from limit_graph.orchestration.audit_report import build_report

    document = _json_export(lines, _Discard(), progress, keep=True)
    report = build_report(document, trusted_key=trusted)
    with _destination(output) as out:
        out.write(report.html)
    progress.done(f"reported {progress.count:,} entries{where}: {report.check.sentence}")
    return report.check.ok


class _Discard:
    """A text sink that keeps nothing (the report is written once rendered)."""

    def write(self, text: str) -> int:
        return len(text)
