"""``data.load_csv``, ``data.transform`` and ``data.summarize``: typed rows from real
files, each operation's semantics, the statistics against the standard library's, a
clear error for each bad input, and the agents on a real platform."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import BackendKind, ExecutionState, SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.platform import Platform
from limit_graph.tasks.data import AGENTS
from limit_graph.tasks.data.load import LoadCsvInput, LoadCsvOutput, load_csv
from limit_graph.tasks.data.summarize import SummarizeInput, SummarizeOutput, summarize
from limit_graph.tasks.data.transform import TransformInput, TransformOutput, transform

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "data"
ADMIN = Principal(name="admin", tenant="acme", roles=frozenset({"admin"}))


def load(root: Path, path: str = "t.csv", **fields: Any) -> LoadCsvOutput:
    return load_csv.fn(LoadCsvInput(root=str(root), path=path, **fields))


def write(folder: Path, text: str, name: str = "t.csv") -> Path:
    file = folder / name
    file.write_text(text, encoding="utf-8")
    return folder


def refused(call: Any, *args: Any, **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        call(*args, **kwargs)
    assert raised.value.errors, "the error locates the problem"
    return raised.value


def run_transform(
    rows: list[dict[str, Any]], *operations: dict[str, Any], **fields: Any
) -> TransformOutput:
    inputs = TransformInput.model_validate({"rows": rows, "operations": list(operations), **fields})
    return transform.fn(inputs)


def run_summarize(rows: list[dict[str, Any]], **fields: Any) -> SummarizeOutput:
    return summarize.fn(SummarizeInput.model_validate({"rows": rows, **fields}))


# --- data.load_csv --------------------------------------------------------------------


def test_the_shipped_csv_loads_with_typed_columns_nulls_and_its_hash() -> None:
    out = load(SHIPPED, "calibrations.csv", types={"qubit": "integer"})
    assert out.columns == [
        "device",
        "qubit",
        "t1_us",
        "t2_us",
        "readout_error",
        "sx_error",
        "operational",
    ]
    assert out.types == {
        "device": "string",
        "qubit": "integer",
        "t1_us": "number",
        "t2_us": "number",
        "readout_error": "number",
        "sx_error": "number",
        "operational": "boolean",
    }
    assert out.row_count == len(out.rows) == 17
    assert out.rows[0] == {
        "device": "fake_manila",
        "qubit": 0,
        "t1_us": 86.6,
        "t2_us": 47.8,
        "readout_error": 0.0295,
        "sx_error": 0.000407,
        "operational": True,
    }
    assert [r["t2_us"] for r in out.rows].count(None) == 1
    data = (SHIPPED / "calibrations.csv").read_bytes()
    assert out.source.sha256 == hashlib.sha256(data).hexdigest()
    assert out.source.bytes == len(data) and out.source.path == "calibrations.csv"


def test_types_are_inferred_per_column_and_declared_ones_win(tmp_path: Path) -> None:
    text = (
        "id,score,flag,label,big,odd,empty\n"
        "1,2.5,TRUE,a,9007199254740993,nan,\n"
        "2,3,false, b ,1,inf,\n"
    )
    out = load(write(tmp_path, text))
    assert out.types == {
        "id": "integer",
        "score": "number",
        "flag": "boolean",
        "label": "string",
        "big": "number",  # beyond 2^53 an integer would not survive JSON
        "odd": "string",  # NaN and infinity are not JSON numbers
        "empty": "string",  # nothing to infer from
    }
    assert out.rows[1] == {
        "id": 2,
        "score": 3.0,
        "flag": False,
        "label": " b ",  # text is kept as written
        "big": 1.0,
        "odd": "inf",
        "empty": None,
    }
    declared = load(tmp_path, types={"id": "string", "score": "number"})
    assert declared.rows[0]["id"] == "1" and declared.types["id"] == "string"
    plain = load(tmp_path, infer_types=False)
    assert set(plain.types.values()) == {"string"} and plain.rows[0]["score"] == "2.5"


def test_delimiters_quotes_a_bom_and_null_markers(tmp_path: Path) -> None:
    text = '\ufeffname;note;n\n"Smith; J.";"two\nlines";NA\nLee;"said ""hi""";4\n\n'
    out = load(write(tmp_path, text), delimiter=";", null_values=["", "NA"])
    assert out.columns == ["name", "note", "n"]
    assert out.rows == [
        {"name": "Smith; J.", "note": "two\nlines", "n": None},
        {"name": "Lee", "note": 'said "hi"', "n": 4},
    ]


@pytest.mark.parametrize("path", ["/etc/passwd", "C:\\data\\t.csv", "a\x00b"])
def test_an_absolute_or_strange_path_is_refused_before_running(path: str) -> None:
    with pytest.raises(ValidationError) as raised:
        LoadCsvInput(root="/tmp", path=path)
    assert raised.value.errors()[0]["loc"] == ("path",)


def test_paths_leading_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write(tmp_path, "secret\n1\n", "outside.csv")
    (root / "link.csv").symlink_to(tmp_path / "outside.csv")
    (root / "sub").mkdir()
    for path in ["../outside.csv", "sub/../../outside.csv", "link.csv"]:
        error = refused(load, root, path)
        assert "leads outside the root folder" in error.detail, path
        assert error.errors[0]["loc"] == ["path"]
    write(root, "a\n1\n", "inside.csv")
    assert load(root, "sub/../inside.csv").rows == [{"a": 1}]


def test_a_missing_file_folder_or_root_is_named(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    assert "does not exist" in refused(load, tmp_path, "nope.csv").detail
    assert "is not a regular file" in refused(load, tmp_path, "folder").detail
    error = refused(load, tmp_path / "absent", "t.csv")
    assert "root folder" in error.detail and error.errors[0]["loc"] == ["root"]
    write(tmp_path, "a\n1\n")
    assert "is not a folder" in refused(load, tmp_path / "t.csv", "x.csv").detail


@pytest.mark.parametrize(
    ("text", "fields", "message"),
    [
        ("", {}, "is empty: it needs a header row"),
        ("a,b\n1,2\n3\n", {}, "line 3 has 1 fields, the header 2"),
        ("a,a\n1,2\n", {}, "names column 'a' twice"),
        ("a,,c\n1,2,3\n", {}, "header column 2 has no name"),
        ('a,b\n"1,2\n', {}, "line"),
        ("a\nx\n", {"types": {"a": "integer"}}, "line 2, column 'a': 'x' is not an integer"),
        ("a\nyes\n", {"types": {"a": "boolean"}}, "'yes' is not a boolean"),
        ("a\n1\n", {"types": {"b": "integer"}}, "`types` names column 'b'"),
        ("a\n1\n2\n3\n", {"max_rows": 2}, "more than max_rows (2)"),
        ("a\n12345\n", {"max_bytes": 5}, "larger than max_bytes (5)"),
    ],
)
def test_a_bad_file_is_refused_with_the_line_at_fault(
    tmp_path: Path, text: str, fields: dict[str, Any], message: str
) -> None:
    write(tmp_path, text)
    assert message in refused(lambda: load(tmp_path, **fields)).detail


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(b"name\ncaf\xe9\n")
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        load(tmp_path)


def test_max_rows_allows_exactly_that_many(tmp_path: Path) -> None:
    write(tmp_path, "a\n1\n2\n")
    assert load(tmp_path, max_rows=2).row_count == 2


# --- data.transform -------------------------------------------------------------------

ROWS: list[dict[str, Any]] = [
    {"name": "a", "x": 3, "y": 1.5, "ok": True},
    {"name": "b", "x": 1, "y": None, "ok": False},
    {"name": "c", "x": 2, "y": 0.0, "ok": True},
    {"name": "d", "x": None, "y": 2.0, "ok": True},
]


@pytest.mark.parametrize(
    ("operator", "value", "kept"),
    [
        ("==", 2, ["c"]),
        ("==", 2.0, ["c"]),  # numbers compare as numbers
        ("!=", 2, ["a", "b", "d"]),  # null differs from 2
        ("<", 3, ["b", "c"]),  # a null never passes an ordering test
        ("<=", 3, ["a", "b", "c"]),
        (">", 1, ["a", "c"]),
        (">=", 1, ["a", "b", "c"]),
        ("in", [1, 3], ["a", "b"]),
        ("not in", [1, 3], ["c", "d"]),
        ("==", None, ["d"]),
    ],
)
def test_filter_keeps_the_rows_that_compare_true(
    operator: str, value: Any, kept: list[str]
) -> None:
    out = run_transform(ROWS, {"op": "filter", "column": "x", "operator": operator, "value": value})
    assert [r["name"] for r in out.rows] == kept
    assert out.input_row_count == 4 and out.row_count == len(kept)


def test_equality_does_not_confuse_booleans_with_numbers() -> None:
    out = run_transform(ROWS, {"op": "filter", "column": "ok", "operator": "==", "value": 1})
    assert out.rows == []
    out = run_transform(ROWS, {"op": "filter", "column": "ok", "operator": "==", "value": True})
    assert [r["name"] for r in out.rows] == ["a", "c", "d"]


def test_ordering_text_against_a_number_is_an_error_naming_the_row() -> None:
    error = refused(
        run_transform, ROWS, {"op": "filter", "column": "name", "operator": "<", "value": 2}
    )
    assert error.detail == "row 0: column 'name' holds text, which `<` cannot compare with a number"
    assert error.errors[0]["loc"] == ["operations", 0, "value"]
    texts = run_transform(ROWS, {"op": "filter", "column": "name", "operator": ">", "value": "b"})
    assert [r["name"] for r in texts.rows] == ["c", "d"]


@given(
    st.lists(st.one_of(st.none(), st.integers(-50, 50)), max_size=40),
    st.integers(-50, 50),
)
def test_a_filter_and_its_opposite_split_the_non_null_rows(
    values: list[int | None], pivot: int
) -> None:
    rows = [{"v": v} for v in values]
    below = run_transform(
        rows, {"op": "filter", "column": "v", "operator": "<", "value": pivot}, columns=["v"]
    )
    rest = run_transform(
        rows, {"op": "filter", "column": "v", "operator": ">=", "value": pivot}, columns=["v"]
    )
    assert below.row_count + rest.row_count == sum(v is not None for v in values)
    assert all(r["v"] < pivot for r in below.rows)  # type: ignore[operator]


def test_derive_computes_a_column_with_nulls_and_division_by_zero_as_null() -> None:
    out = run_transform(
        ROWS,
        {
            "op": "derive",
            "column": "ratio",
            "left": "x",
            "operator": "/",
            "right": "y",
            "digits": 2,
        },
        {"op": "derive", "column": "x", "left": "x", "operator": "*", "right": 10},
    )
    assert out.columns == ["name", "x", "y", "ok", "ratio"]  # a replaced column stays put
    assert [(r["x"], r["ratio"]) for r in out.rows] == [
        (30, 2.0),
        (10, None),  # y is null
        (20, None),  # divided by zero
        (None, None),  # x was null
    ]


def test_derive_refuses_a_column_that_holds_text() -> None:
    error = refused(
        run_transform,
        ROWS,
        {"op": "derive", "column": "z", "left": "name", "operator": "+", "right": 1},
    )
    assert "column 'name' holds text, not a number" in error.detail
    assert error.errors[0]["loc"] == ["operations", 0, "left"]


def test_select_rename_and_sort() -> None:
    out = run_transform(
        ROWS,
        {"op": "sort", "by": ["y"], "descending": True},
        {"op": "select", "columns": ["y", "name"]},
        {"op": "rename", "columns": {"name": "who"}},
    )
    assert out.columns == ["y", "who"]
    assert out.rows == [
        {"y": 2.0, "who": "d"},
        {"y": 1.5, "who": "a"},
        {"y": 0.0, "who": "c"},
        {"y": None, "who": "b"},  # nulls last, descending too
    ]


def test_sort_by_several_columns_is_stable() -> None:
    rows = [{"g": g, "n": n, "i": i} for i, (g, n) in enumerate([(2, 1), (1, 1), (2, 0), (1, 1)])]
    out = run_transform(rows, {"op": "sort", "by": ["g", "n"]})
    assert [r["i"] for r in out.rows] == [1, 3, 2, 0]


def test_an_emptied_table_keeps_its_columns() -> None:
    out = run_transform(
        ROWS,
        {"op": "filter", "column": "x", "operator": ">", "value": 100},
        {"op": "select", "columns": ["name"]},
    )
    assert out.rows == [] and out.columns == ["name"]


@pytest.mark.parametrize(
    ("operation", "message", "loc"),
    [
        ({"op": "select", "columns": ["nope"]}, "no column 'nope'", ["operations", 0, "columns"]),
        ({"op": "sort", "by": ["nope"]}, "no column 'nope'", ["operations", 0, "by"]),
        (
            {"op": "rename", "columns": {"name": "x"}},
            "two columns named 'x'",
            ["operations", 0, "columns"],
        ),
        (
            {"op": "derive", "column": "z", "left": "x", "operator": "+", "right": "nope"},
            "no column 'nope'",
            ["operations", 0, "right"],
        ),
    ],
)
def test_operations_on_missing_or_clashing_columns_are_refused(
    operation: dict[str, Any], message: str, loc: list[Any]
) -> None:
    error = refused(run_transform, ROWS, operation)
    assert message in error.detail and error.errors[0]["loc"] == loc


def test_sorting_a_column_of_mixed_types_is_refused() -> None:
    rows: list[dict[str, Any]] = [{"v": 1}, {"v": "one"}]
    assert "mixes" in refused(run_transform, rows, {"op": "sort", "by": ["v"]}).detail


def test_rows_must_fit_the_given_columns() -> None:
    error = refused(
        run_transform, ROWS, {"op": "select", "columns": ["name"]}, columns=["name", "x"]
    )
    assert "row 0 has column 'y'" in error.detail


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "eval", "code": "__import__('os')"},
        {"op": "filter", "column": "x", "operator": "in", "value": 1},
        {"op": "filter", "column": "x", "operator": "==", "value": [1]},
        {"op": "filter", "column": "x", "operator": "<", "value": True},
        {"op": "filter", "column": "x", "operator": "=~", "value": 1},
        {"op": "derive", "column": "z", "left": "x", "operator": "**", "right": 2},
        {"op": "select", "columns": ["x", "x"]},
        {"op": "sort", "by": []},
        {"op": "select", "columns": ["x"], "extra": 1},
    ],
)
def test_malformed_operations_are_refused_before_running(operation: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TransformInput.model_validate({"rows": ROWS, "operations": [operation]})


# --- data.summarize -------------------------------------------------------------------


def test_summaries_per_group_match_the_statistics_module() -> None:
    rows: list[dict[str, Any]] = [
        {"g": "b", "v": 4.0, "w": 1},
        {"g": "a", "v": 1.0, "w": None},
        {"g": "a", "v": 2.5, "w": 3},
        {"g": None, "v": 7.0, "w": 2},
        {"g": "a", "v": None, "w": 5},
    ]
    out = run_summarize(
        rows, group_by="g", statistics=["count", "mean", "min", "max", "sum", "stdev"], digits=None
    )
    assert out.measures == ["v", "w"] and out.groups == 3 and out.row_count == 5
    assert [row["g"] for row in out.table] == ["a", "b", None]  # by value, null last
    a = out.table[0]
    assert a["rows"] == 3 and a["v_count"] == 2 and a["w_count"] == 2
    assert a["v_mean"] == statistics.fmean([1.0, 2.5]) and a["v_sum"] == 3.5
    assert a["v_min"] == 1.0 and a["v_max"] == 2.5
    assert a["w_stdev"] == statistics.stdev([3, 5])
    b = out.table[1]
    assert b["v_stdev"] is None  # one value has no sample deviation


def test_without_group_by_one_row_summarizes_the_whole_table() -> None:
    out = run_summarize([{"n": 1}, {"n": 2}, {"n": 6}], digits=3)
    assert out.table == [{"rows": 3, "n_count": 3, "n_mean": 3.0, "n_min": 1, "n_max": 6}]
    empty = run_summarize([], columns=["n"], measures=["n"])
    assert empty.table == [{"rows": 0, "n_count": 0, "n_mean": None, "n_min": None, "n_max": None}]


def test_measures_default_to_the_numeric_columns_and_digits_round() -> None:
    rows: list[dict[str, Any]] = [
        {"k": "x", "t": "text", "n": 1, "f": True},
        {"k": "x", "t": None, "n": 2, "f": False},
    ]
    out = run_summarize(rows, statistics=["mean"], digits=0)
    assert out.measures == ["n"]  # text and booleans are not measured
    assert out.table == [{"rows": 2, "n_mean": 2.0}]  # 1.5 rounded half to even


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"group_by": "nope"}, "no column 'nope'"),
        ({"measures": ["t"]}, "measure 't' holds text"),
        ({"measures": ["nope"]}, "no column 'nope'"),
        ({"group_by": "n_count", "measures": ["n"]}, "two result columns would be named 'n_count'"),
    ],
)
def test_bad_summaries_are_refused(fields: dict[str, Any], message: str) -> None:
    rows = [{"t": "a", "n": 1, "n_count": 1}]
    assert message in refused(run_summarize, rows, **fields).detail


@pytest.mark.parametrize(
    "fields",
    [
        {"statistics": ["median"]},
        {"statistics": ["mean", "mean"]},
        {"group_by": "n", "measures": ["n"]},
        {"digits": 99},
        {"measures": []},
    ],
)
def test_malformed_summaries_are_refused_before_running(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SummarizeInput.model_validate({"rows": [{"n": 1}], **fields})


# --- the agents on the platform -------------------------------------------------------


def test_the_agents_are_registered_typed_and_classical() -> None:
    registry = AgentRegistry.from_entry_points()
    for spec in AGENTS:
        assert registry.get(spec.name) == spec
        assert set(spec.backends) == {BackendKind.LOCAL, BackendKind.REMOTE}
        described = json.loads(json.dumps(spec.describe()))
        assert described["input_schema"]["additionalProperties"] is False
    by_name = {spec.name: spec for spec in AGENTS}
    assert not by_name["data.load_csv"].deterministic  # the file may change
    assert by_name["data.transform"].deterministic and by_name["data.summarize"].deterministic


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = load_settings(environ={}, home=str(tmp_path), storage__type="memory")
    started = await Platform.start(settings, registry=AgentRegistry(AGENTS))
    try:
        yield started
    finally:
        await started.close()


async def test_a_malformed_transform_is_refused_by_the_platform_with_nothing_recorded(
    platform: Platform,
) -> None:
    session = await platform.sessions.create(ADMIN, SessionConfig(), name="data")
    before = await platform.storage.ledger_size()
    bad = {
        "rows": ROWS,
        "operations": [{"op": "filter", "column": "x", "operator": "in", "value": 1}],
    }
    with pytest.raises(InvalidInput) as raised:
        await platform.executions.execute(
            ADMIN, session.id, ExecuteCommand(agent="data.transform", inputs=bad)
        )
    assert any("needs a list" in e["msg"] for e in raised.value.errors)
    assert await platform.storage.ledger_size() == before


async def test_a_file_outside_the_root_fails_the_execution_with_a_clear_error(
    platform: Platform,
) -> None:
    session = await platform.sessions.create(ADMIN, SessionConfig(), name="data")
    inputs = {"root": str(SHIPPED), "path": "../README.md"}
    execution = await platform.executions.execute(
        ADMIN, session.id, ExecuteCommand(agent="data.load_csv", inputs=inputs)
    )
    execution = await platform.executions.wait_final(execution)
    assert execution.state is ExecutionState.FAILED
    assert execution.error is not None and execution.error.type == "InvalidInput"
    assert execution.error.message == "path '../README.md' leads outside the root folder"
    assert execution.error.retryable is False
    assert execution.result is None
