"""Where the gate's table comes from: records in the request, or a file in the data folder.

A file reference is a relative path ending ``.csv`` or ``.parquet``, written as that
string or as ``{"path": ...}``; ``{"root": FOLDER, "path": ...}`` (what a gate on
``data.load_csv``'s ``root`` and ``path`` inputs reads) is ``FOLDER/path``, with
``FOLDER`` resolved as that agent resolves its root (a relative one against the working
directory).  Either way the file must lie inside the platform's data folder after
symbolic links are followed: no absolute path, no ``..``, no link leading out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from limit_graph.core.errors import InvalidInput
from limit_graph.governance.compliance.data_quality.declaration import (
    DataQualityDeclaration,
    value_error,
)

__all__ = ["MAX_FILE_BYTES", "read_frame", "resolve_table_input", "table_input"]

MAX_FILE_BYTES = 1024**3
"""Largest CSV or Parquet file the gate reads into memory."""
_SUFFIXES = (".csv", ".parquet")

Table = list[dict[str, Any]] | Path


def table_input(
    declaration: DataQualityDeclaration, inputs: Mapping[str, Any], data_dir: Path
) -> Table:
    """The table the declaration's input holds among an execution's ``inputs`` (with its
    ``root`` input joined to a file path, when the declaration names one)."""
    if declaration.input not in inputs:
        msg = f"the data-quality gate reads input {declaration.input!r}, which is not given"
        raise InvalidInput(msg, [value_error(["inputs", declaration.input], "field required")])
    value = inputs[declaration.input]
    if declaration.root is not None and isinstance(value, str):
        value = {"root": inputs.get(declaration.root), "path": value}
    return resolve_table_input(value, data_dir, loc=("inputs", declaration.input))


def resolve_table_input(value: Any, data_dir: Path, *, loc: Sequence[str | int] = ()) -> Table:
    """Records as they are, or the file a reference names inside ``data_dir``; else
    :class:`InvalidInput`.

    >>> resolve_table_input([{"a": 1}], Path("."))
    [{'a': 1}]
    >>> resolve_table_input("../secrets.csv", Path("."))
    Traceback (most recent call last):
    ...
    limit_graph.core.errors.InvalidInput: table file '../secrets.csv': may not contain '..'
    """
    if isinstance(value, list):
        if not all(isinstance(row, Mapping) for row in value):
            msg = "a table is a list of records (objects)"
            raise InvalidInput(msg, [value_error(loc, msg)])
        return value
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, Mapping) or not value.keys() <= {"path", "root"}:
        msg = 'a table is a list of records or a file: "x.csv" or {"path": "x.csv"}'
        raise InvalidInput(msg, [value_error(loc, msg)])
    path, root = value.get("path"), value.get("root")
    if not isinstance(path, str) or not isinstance(root, str | None):
        msg = "a file reference's path (and root) are text"
        raise InvalidInput(msg, [value_error(loc, msg)])
    return _inside(data_dir, root, path, [*loc, "path"])


def _inside(data_dir: Path, root: str | None, path: str, loc: list[str | int]) -> Path:
    def refuse(msg: str) -> InvalidInput:
        return InvalidInput(f"table file {path!r}: {msg}", [value_error(loc, msg)])

    if "\x00" in path or (root is not None and "\x00" in root):
        raise refuse("may not contain a NUL character")
    pure, windows = PurePosixPath(path), PureWindowsPath(path)
    if pure.is_absolute() or windows.is_absolute() or windows.drive:
        raise refuse("must be relative to the data folder, not absolute")
    if ".." in pure.parts or ".." in windows.parts:
        raise refuse("may not contain '..'")
    if not path.lower().endswith(_SUFFIXES):
        raise refuse("must end .csv or .parquet")
    try:
        folder = data_dir.resolve(strict=True)
        base = folder if root is None else Path(root).resolve(strict=True)
        target = (base / pure).resolve(strict=False)
    except (OSError, RuntimeError):
        raise refuse("its folder does not exist") from None
    if not base.is_relative_to(folder) or not target.is_relative_to(base):
        raise refuse("leads outside the data folder")
    if not target.is_file():
        raise refuse("is not a regular file" if target.exists() else "does not exist")
    if target.stat().st_size > MAX_FILE_BYTES:
        raise refuse(f"is larger than {MAX_FILE_BYTES} bytes")
    return target


def read_frame(table: Table) -> Any:
    """A pandas DataFrame of the records, or of the file (blocking: a worker thread's)."""
    import pandas as pd

    if not isinstance(table, Path):
        return pd.DataFrame.from_records(table)
    try:
        if table.suffix.lower() == ".csv":
            return pd.read_csv(table)
        return pd.read_parquet(table)
    except Exception as exc:  # pandas and pyarrow raise many kinds for an unreadable file
        msg = f"cannot read {table.name!r}: {type(exc).__name__}: {exc}"[:500]
        raise InvalidInput(msg, [value_error(["path"], msg)]) from None
