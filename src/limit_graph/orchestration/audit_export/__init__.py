"""The audit export: a caller's trail as one document that checks itself, streamed.

An export is taken in two steps, so that it is self-consistent however busy the ledger
is: first the signed checkpoint of the ledger as it is (:meth:`AuditService.checkpoint`),
then the caller's entries (scoped and filtered as ``GET /audit`` reads them) with an
index below that checkpoint's tree size, page by page, each with its RFC 6962 inclusion
proof in that tree.  The proofs of a page come from one read of the ledger's nodes.
While it is written every entry is checked as a verifier outside would check it: its
payload against ``payload_sha256``, its fields against ``leaf_hash``, its proof against
the checkpoint's root (:func:`check_entry`); the checkpoint's note against the ledger's
key.  What was found ends the JSON document (``verification``) and is each CSV row's
``verified`` column.

Two encodings (``docs/provenance.md``, "Export and report", says the same for users):

- **JSON**, one document: ``format``, ``exported_at``, ``filters``, ``checkpoint`` (as
  ``GET /audit/checkpoint`` answers), ``entries`` (each entry's every field, its payload
  and salt, and ``proof``; one entry a line) and ``verification`` last;
- **CSV** (RFC 4180, UTF-8, a header row, one row per entry): :data:`CSV_COLUMNS`; the
  payload as canonical JSON text, the proof's hashes joined by spaces.  The checkpoint
  is not in the rows (spreadsheets expect a header and rows, nothing else): it is in the
  response's ``X-Checkpoint-*`` headers (:meth:`AuditExport.headers`), from which
  ``limit audit export`` writes a sidecar file.  A text cell that a spreadsheet would
  take for a formula is written after a ``'`` (:func:`spreadsheet_text`).
"""

from limit_graph.orchestration.audit_export.checks import (
    LISTED_FAILURES,
    Tally,
    check_checkpoint,
    check_entry,
    checkpoint_document,
    key_label,
)
from limit_graph.orchestration.audit_export.export import (
    CSV_COLUMNS,
    EXPORT_FORMAT,
    PAGE,
    AuditExport,
    ExportFormat,
    spreadsheet_text,
    start_export,
)

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMAT",
    "LISTED_FAILURES",
    "PAGE",
    "AuditExport",
    "ExportFormat",
    "Tally",
    "check_checkpoint",
    "check_entry",
    "checkpoint_document",
    "key_label",
    "spreadsheet_text",
    "start_export",
]
