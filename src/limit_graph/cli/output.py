"""What the CLI prints: rich tables for a person at a terminal, full values for a pipe.

On a terminal a table is drawn to the terminal's width; anywhere else (a pipe, a file)
it is tab-separated with a header line and nothing cut, so ``cut``, ``awk`` and
``grep`` see whole values.  JSON goes out highlighted on a terminal and plain otherwise,
parseable either way.

>>> tsv_line(["a\\tb", "line\\nbreak"])
'a b\\tline break'
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = [
    "print_json",
    "print_listing",
    "print_table",
    "print_text",
    "stdout_is_terminal",
    "tell",
    "tsv_line",
]

_out = Console()
_err = Console(stderr=True, highlight=False)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(document: Any) -> None:
    """``document`` as indented JSON on standard output."""
    if stdout_is_terminal():
        _out.print_json(json.dumps(document))
    else:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()


def tsv_line(values: Iterable[str]) -> str:
    """One tab-separated line; tabs and line breaks inside a value become spaces."""
    return "\t".join(v.replace("\t", " ").replace("\r", " ").replace("\n", " ") for v in values)


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, whole: Sequence[str] = ()
) -> None:
    """A table: rich on a terminal (the ``whole`` columns never wrap), else TSV."""
    if not stdout_is_terminal():
        lines = [tsv_line(columns), *(tsv_line(row) for row in rows)]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return
    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=column in whole)
    for row in rows:
        table.add_row(*row)
    _out.print(table)


def print_listing(
    page: dict[str, Any],
    columns: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[str]],
    *,
    as_json: bool,
    noun: str,
) -> None:
    """A listing the server answered (``{"items", "next_cursor"?}``): the document itself
    with ``--json``, else a table of ``row(item)`` (its first column never wraps) and, on
    standard error, how to see the next page."""
    if as_json:
        print_json(page)
        return
    print_table(columns, [row(item) for item in page["items"]], whole=columns[:1])
    if page.get("next_cursor"):
        tell(f"more {noun}: --json shows next_cursor {page['next_cursor']}")


def print_text(text: str) -> None:
    """A plain line on standard output, no markup."""
    _out.print(text, markup=False, highlight=False, soft_wrap=True)


def tell(message: str) -> None:
    """A line for the person, on standard error, so standard output stays parseable."""
    _err.print(message, markup=False, soft_wrap=True)
