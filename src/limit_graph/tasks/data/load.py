"""``data.load_csv``: a CSV file under a root folder, read as typed rows.

The file is named by a ``root`` folder and a ``path`` relative to it; the path is
resolved (symbolic links followed) and must stay inside the root, so a workflow can
be pointed at a data folder without being able to read anything beside it.  Cells
become integers, numbers, booleans or text, as declared in ``types`` or inferred per
column; the texts in ``null_values`` (by default the empty cell) become null.  A file
that is too large, not UTF-8, or not a rectangular CSV is refused with the line at
fault.  The result carries the file's SHA-256 for provenance.

>>> from pathlib import Path
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "t.csv").write_text("name,n,ok\\na,1,true\\nb,,false\\n")
>>> out = load_csv.fn(LoadCsvInput(root=str(folder), path="t.csv"))
>>> out.types, out.rows[1]
({'name': 'string', 'n': 'integer', 'ok': 'boolean'}, {'name': 'b', 'n': None, 'ok': False})
>>> load_csv.fn(LoadCsvInput(root=str(folder), path="../t.csv"))
Traceback (most recent call last):
...
limit_graph.core.errors.InvalidInput: path '../t.csv' leads outside the root folder
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

from prefect import task
from pydantic import BaseModel, ConfigDict, Field, field_validator

from limit_graph.core.errors import InvalidInput
from limit_graph.tasks.data.table import (
    MAX_COLUMNS,
    MAX_ROWS,
    ColumnName,
    ColumnType,
    Row,
    Scalar,
    table_error,
)

__all__ = ["MAX_BYTES", "CsvSource", "LoadCsvInput", "LoadCsvOutput", "load_csv", "resolve_inside"]

MAX_BYTES = 100 * 1024 * 1024
"""Largest file ``max_bytes`` may allow."""
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False}
_SAFE_INTEGER = 2**53 - 1
"""Beyond this an integer does not survive a trip through JSON readers (I-JSON)."""


class LoadCsvInput(BaseModel):
    """Which file to read and how to type its cells."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(
        min_length=1,
        max_length=4096,
        description="The folder the file must be in. Resolved on the machine that runs "
        "the step (a relative root against its working directory).",
    )
    path: str = Field(
        min_length=1,
        max_length=1024,
        description="The file, relative to `root`; it may not lead outside it, symbolic "
        "links included.",
    )
    delimiter: Literal[",", ";", "\t", "|"] = Field(default=",", description="Field separator.")
    types: dict[ColumnName, ColumnType] = Field(
        default_factory=dict,
        max_length=MAX_COLUMNS,
        description="Declared types by column; the others are inferred (see infer_types).",
    )
    infer_types: bool = Field(
        default=True,
        description="Type undeclared columns as integer, number or boolean when every "
        "non-null cell reads as one (tried in that order); else, and when false, string.",
    )
    null_values: list[str] = Field(
        default_factory=lambda: [""],
        max_length=20,
        description='Cell texts (spaces around them ignored) read as null, e.g. ["", "NA"].',
    )
    max_rows: int = Field(default=10_000, ge=1, le=MAX_ROWS, description="Rows allowed.")
    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, le=MAX_BYTES, description="File size allowed."
    )

    @field_validator("root", "path")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("may not contain a NUL character")
        return value

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
            raise ValueError("must be relative to `root`, not an absolute path")
        if PureWindowsPath(path).drive:
            raise ValueError("must be relative to `root`, without a drive")
        return path


class CsvSource(BaseModel):
    path: str = Field(description="The path as given, relative to the root.")
    sha256: str = Field(description="SHA-256 of the file's bytes.")
    bytes: int


class LoadCsvOutput(BaseModel):
    columns: list[str] = Field(description="The header's column names, in order.")
    types: dict[str, ColumnType] = Field(description="Each column's type.")
    rows: list[Row] = Field(description="One object per data line.")
    row_count: int
    source: CsvSource


def resolve_inside(root: str, path: str) -> Path:
    """The file ``path`` names under ``root``, or :class:`InvalidInput` if the root is
    not a folder, or the path leads outside it or to no regular file."""
    try:
        base = Path(root).resolve(strict=True)
    except (OSError, RuntimeError):
        raise table_error(f"root folder {root!r} does not exist", ["root"]) from None
    if not base.is_dir():
        raise table_error(f"root {root!r} is not a folder", ["root"])
    try:
        target = (base / path).resolve(strict=False)
    except (OSError, RuntimeError):
        raise table_error(f"path {path!r} cannot be resolved", ["path"]) from None
    if not target.is_relative_to(base):
        raise table_error(f"path {path!r} leads outside the root folder", ["path"])
    if not target.is_file():
        what = "is not a regular file" if target.exists() else "does not exist"
        raise table_error(f"path {path!r} {what} under the root folder", ["path"])
    return target


def _read(file: Path, path: str, max_bytes: int) -> bytes:
    with file.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise table_error(f"{path!r} is larger than max_bytes ({max_bytes})", ["path"])
    return data


def _records(text: str, delimiter: str, path: str, max_rows: int) -> list[tuple[int, list[str]]]:
    """The non-blank records with the line each ends on; the first is the header."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            if not record:
                continue
            if len(records) > max_rows:
                raise table_error(
                    f"{path!r} has more than max_rows ({max_rows}) rows", ["max_rows"]
                )
            records.append((reader.line_num, record))
    except csv.Error as exc:
        raise table_error(f"{path!r} line {reader.line_num}: {exc}", ["path"]) from None
    return records


def _header(record: list[str], path: str) -> list[str]:
    names = [name.strip() for name in record]
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not name:
            raise table_error(f"{path!r}: header column {position} has no name", ["path"])
        if name in seen:
            raise table_error(f"{path!r}: header names column {name!r} twice", ["path"])
        seen.add(name)
    if len(names) > MAX_COLUMNS:
        raise table_error(f"{path!r} has more than {MAX_COLUMNS} columns", ["path"])
    return names


def _parse(text: str, kind: ColumnType) -> Scalar:
    """The cell ``text`` (already stripped) as ``kind``; ValueError if it is not one."""
    if kind == "string":
        return text
    if kind == "boolean":
        if text.lower() in _BOOLEANS:
            return _BOOLEANS[text.lower()]
        raise ValueError("is not a boolean (true or false)")
    if kind == "integer":
        if _INTEGER.fullmatch(text) and abs(value := int(text)) <= _SAFE_INTEGER:
            return value
        raise ValueError(f"is not an integer (of at most {_SAFE_INTEGER})")
    if _NUMBER.fullmatch(text):
        return float(text)
    raise ValueError("is not a number")


_INFERRED: tuple[ColumnType, ...] = ("integer", "number", "boolean")


def _infer(texts: list[str]) -> ColumnType:
    """The first of integer, number and boolean that every text reads as, else string
    (also when there is no text: a column of nulls)."""
    if not texts:
        return "string"
    for kind in _INFERRED:
        try:
            for text in texts:
                _parse(text, kind)
        except ValueError:
            continue
        return kind
    return "string"


def _typed(
    inputs: LoadCsvInput, header: list[str], records: list[tuple[int, list[str]]]
) -> tuple[dict[str, ColumnType], list[Row]]:
    nulls = {value.strip() for value in inputs.null_values}
    for line, record in records:
        if len(record) != len(header):
            raise table_error(
                f"{inputs.path!r} line {line} has {len(record)} fields, the header {len(header)}",
                ["path"],
            )
    types: dict[str, ColumnType] = {}
    for position, name in enumerate(header):
        if name in inputs.types:
            types[name] = inputs.types[name]
        elif inputs.infer_types:
            present = [r[position].strip() for _, r in records if r[position].strip() not in nulls]
            types[name] = _infer(present)
        else:
            types[name] = "string"
    rows: list[Row] = []
    for line, record in records:
        row: Row = {}
        for name, cell in zip(header, record, strict=True):
            stripped = cell.strip()
            if stripped in nulls:
                row[name] = None
                continue
            kind = types[name]
            try:
                row[name] = cell if kind == "string" else _parse(stripped, kind)
            except ValueError as exc:
                raise table_error(
                    f"{inputs.path!r} line {line}, column {name!r}: {stripped[:50]!r} {exc}",
                    ["types", name],
                ) from None
        rows.append(row)
    return types, rows


@task(name="data.load_csv", persist_result=False)
def load_csv(inputs: LoadCsvInput) -> LoadCsvOutput:
    """Read ``inputs.path`` under ``inputs.root`` as typed rows."""
    file = resolve_inside(inputs.root, inputs.path)
    data = _read(file, inputs.path, inputs.max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{inputs.path!r} is not UTF-8 text (byte {exc.start} cannot be read)"
        ) from None
    records = _records(text, inputs.delimiter, inputs.path, inputs.max_rows)
    if not records:
        raise table_error(f"{inputs.path!r} is empty: it needs a header row", ["path"])
    header = _header(records[0][1], inputs.path)
    undeclared = next((name for name in inputs.types if name not in header), None)
    if undeclared is not None:
        raise table_error(
            f"`types` names column {undeclared!r}, which {inputs.path!r} does not have "
            f"(its columns: {', '.join(header)})",
            ["types", undeclared],
        )
    types, rows = _typed(inputs, header, records[1:])
    return LoadCsvOutput(
        columns=header,
        types=types,
        rows=rows,
        row_count=len(rows),
        source=CsvSource(
            path=inputs.path, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)
        ),
    )
