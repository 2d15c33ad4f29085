"""The data-quality gate against real great-expectations: suites parsed (and refused),
tables of records and CSV/Parquet files validated, file references kept inside the data
folder, and GX kept off the import path."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from limit_graph.core.errors import InvalidInput
from limit_graph.governance.compliance.data_quality import (
    DataQualityDeclaration,
    parse_data_quality,
    resolve_table_input,
    table_input,
    validate_table,
)
from limit_graph.governance.compliance.data_quality.engine import engine

SUITE: dict[str, Any] = {
    "name": "readings",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sensor"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "celsius", "min_value": -40, "max_value": 60},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "site", "value_set": ["north", "south"]},
        },
    ],
}
GOOD: list[dict[str, Any]] = [
    {"sensor": "s1", "celsius": 21.5, "site": "north"},
    {"sensor": "s2", "celsius": -3.0, "site": "south"},
    {"sensor": "s3", "celsius": 35.25, "site": "north"},
]
BAD: list[dict[str, Any]] = [
    {"sensor": "s1", "celsius": 21.5, "site": "north"},
    {"sensor": None, "celsius": 80.0, "site": "south"},
    {"sensor": "s3", "celsius": 35.25, "site": "north"},
    {"sensor": None, "celsius": -41.0, "site": "north"},
]


def declare(suite: Any = SUITE, **extra: Any) -> dict[str, Any]:
    return {"check": "data-quality", "input": "rows", "suite": suite, **extra}


@pytest.fixture(scope="module")
def gate() -> DataQualityDeclaration:
    return parse_data_quality(declare())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


def plain_json(value: Any) -> Any:
    """The value through strict JSON (no NaN), as the API and the ledger write it."""
    return json.loads(json.dumps(value, allow_nan=False))


# -- validating ------------------------------------------------------------------------


async def test_a_table_that_meets_the_suite_passes(gate: DataQualityDeclaration) -> None:
    report = await validate_table(gate, GOOD)
    assert report.passed and report.failures == []
    assert report.summary == {
        "evaluated": 3,
        "successful": 3,
        "unsuccessful": 0,
        "success_percent": 100.0,
    }
    assert (report.rows, report.suite) == (3, "readings")
    assert "all 3 expectations met" in report.detail


async def test_a_failing_table_lists_each_failed_expectation_with_what_was_observed(
    gate: DataQualityDeclaration,
) -> None:
    report = await validate_table(gate, BAD)
    assert not report.passed
    assert (report.evaluated, report.successful, report.unsuccessful) == (3, 1, 2)
    nulls, range_ = report.failures
    assert nulls["index"] == 0 and nulls["expectation"] == "expect_column_values_to_not_be_null"
    assert nulls["kwargs"] == {"column": "sensor"}
    assert nulls["unexpected_count"] == 2 and nulls["element_count"] == 4
    assert nulls["observed_value"] == [None, None]
    assert nulls["partial_unexpected_index_list"] == [1, 3]
    assert range_["index"] == 1 and range_["kwargs"]["max_value"] == 60
    assert range_["observed_value"] == [80.0, -41.0] == range_["partial_unexpected_list"]
    assert range_["unexpected_percent"] == 50.0
    assert plain_json(report.to_dict()) == report.to_dict()
    assert report.detail.startswith("suite 'readings' failed 2 of 3 expectations")
    assert "expect_column_values_to_be_between(celsius): observed [80.0, -41.0]" in report.detail


async def test_an_aggregate_gives_its_observed_value_and_a_missing_column_its_error() -> None:
    suite = {
        "name": "stats",
        "expectations": [
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "celsius", "min_value": 0, "max_value": 10},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "humidity"}},
            {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 4}},
        ],
    }
    report = await validate_table(parse_data_quality(declare(suite)), BAD)
    mean, missing = report.failures
    assert mean["observed_value"] == pytest.approx((21.5 + 80 + 35.25 - 41) / 4)
    assert type(mean["observed_value"]) is float  # numpy's float64 made plain
    assert missing["index"] == 1 and "humidity" in missing["error"]
    assert report.summary["unsuccessful"] == 2
    assert plain_json(report.to_dict()) == report.to_dict()


async def test_csv_and_parquet_files_in_the_data_folder_are_validated(
    gate: DataQualityDeclaration, data_dir: Path
) -> None:
    (data_dir / "good.csv").write_text(
        "sensor,celsius,site\ns1,21.5,north\ns2,-3,south\n", encoding="utf-8"
    )
    (data_dir / "bad.csv").write_text(
        "sensor,celsius,site\ns1,21.5,north\n,99,south\n", encoding="utf-8"
    )
    pd.DataFrame(BAD).to_parquet(data_dir / "bad.parquet")
    (data_dir / "nested").mkdir()
    pd.DataFrame(GOOD).to_parquet(data_dir / "nested" / "good.parquet")

    good_csv = resolve_table_input("good.csv", data_dir)
    assert good_csv == (data_dir / "good.csv").resolve()
    assert (await validate_table(gate, good_csv)).passed
    bad_csv = await validate_table(gate, resolve_table_input({"path": "bad.csv"}, data_dir))
    assert [f["index"] for f in bad_csv.failures] == [0, 1]
    assert bad_csv.failures[1]["observed_value"] == [99]

    good_parquet = resolve_table_input("nested/good.parquet", data_dir)
    assert (await validate_table(gate, good_parquet)).passed
    bad_parquet = await validate_table(gate, resolve_table_input("bad.parquet", data_dir))
    assert bad_parquet.rows == 4 and bad_parquet.failures[0]["unexpected_count"] == 2


async def test_an_unreadable_file_is_a_clear_error(
    gate: DataQualityDeclaration, data_dir: Path
) -> None:
    (data_dir / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match="cannot read 'broken.parquet'"):
        await validate_table(gate, resolve_table_input("broken.parquet", data_dir))


async def test_validation_runs_off_the_event_loop(gate: DataQualityDeclaration) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    rows = BAD * 25_000
    task = asyncio.create_task(ticker())
    report = await validate_table(gate, rows)
    seen = ticks
    task.cancel()
    assert seen > 0  # a blocking validation would have let the ticker run only after it
    assert report.failures[0]["unexpected_count"] == 50_000


async def test_concurrent_validations_each_get_their_own_verdict(
    gate: DataQualityDeclaration,
) -> None:
    reports = await asyncio.gather(*(validate_table(gate, t) for t in [GOOD, BAD] * 4))
    assert [r.passed for r in reports] == [True, False] * 4
    assert all(r.rows == 4 for r in reports if not r.passed)


# -- the table's input -----------------------------------------------------------------


def test_records_are_taken_as_they_are(data_dir: Path) -> None:
    assert resolve_table_input(GOOD, data_dir) is GOOD
    assert resolve_table_input([], data_dir) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("../outside.csv", "may not contain '..'"),
        ("inner/../../outside.csv", "may not contain '..'"),
        ({"path": "..\\outside.csv"}, "may not contain '..'"),
        ("/etc/passwd.csv", "not absolute"),
        ("C:\\data\\x.csv", "not absolute"),
        ("link/outside.csv", "leads outside the data folder"),
        ("table.txt", "must end .csv or .parquet"),
        ("missing.csv", "does not exist"),
        ("folder.csv", "is not a regular file"),
        ("nul\x00.csv", "NUL"),
        ({"path": "x.csv", "mode": "r"}, "a list of records or a file"),
        ({"path": 3}, "are text"),
        (42, "a list of records or a file"),
        ([{"a": 1}, 2], "a list of records"),
    ],
)
def test_a_bad_table_reference_is_refused(
    data_dir: Path, tmp_path: Path, value: Any, message: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "outside.csv").write_text("a\n1\n", encoding="utf-8")
    (tmp_path / "outside.csv").write_text("a\n1\n", encoding="utf-8")
    (data_dir / "link").symlink_to(outside, target_is_directory=True)
    (data_dir / "folder.csv").mkdir()
    with pytest.raises(InvalidInput, match=message) as caught:
        resolve_table_input(value, data_dir, loc=("inputs", "rows"))
    assert caught.value.errors[0]["loc"][:2] == ["inputs", "rows"]


def test_a_symlink_that_stays_inside_the_data_folder_is_followed(data_dir: Path) -> None:
    (data_dir / "real.csv").write_text("a\n1\n", encoding="utf-8")
    (data_dir / "alias.csv").symlink_to(data_dir / "real.csv")
    assert resolve_table_input("alias.csv", data_dir) == (data_dir / "real.csv").resolve()


def test_a_root_and_path_pair_must_lie_inside_the_data_folder(
    data_dir: Path, tmp_path: Path
) -> None:
    (data_dir / "plant").mkdir()
    (data_dir / "plant" / "t.csv").write_text("a\n1\n", encoding="utf-8")
    (tmp_path / "t.csv").write_text("a\n1\n", encoding="utf-8")
    found = resolve_table_input({"root": str(data_dir / "plant"), "path": "t.csv"}, data_dir)
    assert found == (data_dir / "plant" / "t.csv").resolve()
    with pytest.raises(InvalidInput, match="leads outside the data folder"):
        resolve_table_input({"root": str(tmp_path), "path": "t.csv"}, data_dir)
    with pytest.raises(InvalidInput, match="its folder does not exist"):
        resolve_table_input({"root": str(data_dir / "nowhere"), "path": "t.csv"}, data_dir)


def test_the_declared_input_is_read_from_an_executions_inputs(data_dir: Path) -> None:
    (data_dir / "t.csv").write_text("a\n1\n", encoding="utf-8")
    gate = parse_data_quality(declare(input="path", root="root"))
    inputs = {"root": str(data_dir), "path": "t.csv", "delimiter": ","}
    assert table_input(gate, inputs, data_dir) == (data_dir / "t.csv").resolve()
    records = parse_data_quality(declare())
    assert table_input(records, {"rows": GOOD}, data_dir) is GOOD
    with pytest.raises(InvalidInput, match="reads input 'rows', which is not given") as caught:
        table_input(records, {"other": GOOD}, data_dir)
    assert caught.value.errors[0]["loc"] == ["inputs", "rows"]


# -- parsing ---------------------------------------------------------------------------


def test_what_gx_writes_is_what_the_gate_reads() -> None:
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    between: Any = get_expectation_impl("expect_column_values_to_be_between")
    written = gx.ExpectationSuite(
        name="from-gx", expectations=[between(column="celsius", min_value=0, max_value=9)]
    ).to_json_dict()
    gate = parse_data_quality(declare(written, name="temperatures"))
    assert gate.name == "temperatures" and gate.suite_name == "from-gx"
    assert gate.suite["expectations"][0]["kwargs"]["max_value"] == 9
    again = parse_data_quality(gate.to_json())
    assert again.to_json() == gate.to_json()


@pytest.mark.parametrize(
    ("declaration", "loc", "message"),
    [
        (declare("a suite"), ["suite"], "valid dictionary"),
        (declare({"expectations": SUITE["expectations"]}), ["suite", "name"], "Field required"),
        (declare({"name": "s", "expectations": []}), ["suite", "expectations"], "at least 1"),
        (
            declare({"name": "s", "expectations": [{"kwargs": {"column": "a"}}]}),
            ["suite", "expectations", 0, "type"],
            "Field required",
        ),
        (
            declare({"name": "s", "expectations": [{"type": "x", "kwargs": [1]}]}),
            ["suite", "expectations", 0, "kwargs"],
            "valid dictionary",
        ),
        (
            declare(
                {
                    "name": "s",
                    "expectations": [
                        {
                            "expectation_type": "expect_column_values_to_not_be_null",
                            "kwargs": {"column": "a"},
                        }
                    ],
                }
            ),
            ["suite", "expectations", 0, "expectation_type"],
            "GX 1.x calls it 'type'",
        ),
        ({**declare(), "check": "data-qualty"}, ["check"], "data-quality"),
        ({k: v for k, v in declare().items() if k != "input"}, ["input"], "Field required"),
        (declare(extra_key=1), ["extra_key"], "Extra inputs"),
        (
            declare({**SUITE, "suite_parameters": {"limit": 3}}),
            ["suite", "suite_parameters"],
            "not supported",
        ),
    ],
)
def test_a_malformed_declaration_is_refused_without_gx(
    declaration: dict[str, Any], loc: list[Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match="malformed data-quality declaration") as caught:
        parse_data_quality(declaration)
    assert any(e["loc"] == loc and message in e["msg"] for e in caught.value.errors), (
        caught.value.errors
    )
    assert all(e["type"] == "value_error" for e in caught.value.errors)


def test_an_unknown_expectation_type_is_refused_with_a_suggestion() -> None:
    suite = {
        "name": "s",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "a"}},
            {"type": "expect_the_moon", "kwargs": {}},
        ],
    }
    with pytest.raises(InvalidInput, match="unknown expectation type") as caught:
        parse_data_quality(declare(suite))
    assert [e["loc"] for e in caught.value.errors] == [
        ["suite", "expectations", 1, "type"],
        ["suite", "expectations", 2, "type"],
    ]
    assert "did you mean 'expect_column_values_to_be_between'" in caught.value.errors[0]["msg"]
    assert "did you mean" not in caught.value.errors[1]["msg"]


@pytest.mark.parametrize(
    ("kwargs", "loc", "message"),
    [
        ({"min_value": 0, "max_value": 1}, ["column"], "field required"),
        ({"column": "a", "min_value": "cold", "max_value": 1}, ["min_value"], "valid float"),
        ({"column": "a"}, [], "cannot both be None"),
        ({"column": "a", "max_value": 1, "colour": "red"}, ["colour"], "extra fields"),
        ({"column": "a", "max_value": 1, "mostly": 2}, ["mostly"], "less than or equal"),
        ({"column": "a", "max_value": {"$PARAMETER": "hi"}}, ["max_value"], "not supported"),
        ({"column": "a", "max_value": 1, "meta": {}}, [], "not an expectation argument"),
    ],
)
def test_bad_kwargs_are_refused_where_they_are(
    kwargs: dict[str, Any], loc: list[str], message: str
) -> None:
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": kwargs}],
    }
    with pytest.raises(InvalidInput, match="invalid expectation suite 's'") as caught:
        parse_data_quality(declare(suite))
    where = ["suite", "expectations", 0, "kwargs", *loc]
    assert any(e["loc"] == where and message in e["msg"] for e in caught.value.errors), (
        caught.value.errors
    )


def test_gx_is_made_once_with_usage_statistics_and_progress_bars_off() -> None:
    made = engine()
    assert engine() is made  # once per process
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert made.context.config.analytics_enabled is False
    assert made.context.progress_bars.globally is False


# -- GX stays off the import path --------------------------------------------------------


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_governance_does_not_import_gx() -> None:
    out = run_python(
        """
        import sys
        import limit_graph.governance
        import limit_graph.governance.compliance.data_quality
        print(sorted(m for m in ("great_expectations", "pandas") if m in sys.modules))
        """
    )
    assert out == "[]"


def test_a_cold_gx_is_imported_off_the_loop_and_a_malformed_suite_never_imports_it() -> None:
    """The path a session's or a workflow step's declarations take: ``aparse``."""
    out = run_python(
        """
        import asyncio, sys, threading
        from pathlib import Path
        from limit_graph.core.errors import InvalidInput
        from limit_graph.governance.compliance import ComplianceChecks

        checks = ComplianceChecks([], {}, Path("."))
        where = ["config", "policies"]
        not_null = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}
        unknown = {"type": "expect_nothing", "kwargs": {}}

        def declare(*expectations):
            suite = {"name": "s", "expectations": list(expectations)}
            return [{"check": "data-quality", "input": "rows", "suite": suite}]

        loop_thread = []
        async def main():
            loop_thread.append(threading.get_ident())
            try:
                await checks.aparse([{"check": "data-quality", "suite": {}}], "session", where)
            except InvalidInput:
                print("malformed refused", "great_expectations" in sys.modules)
            [parsed] = await checks.aparse(declare(not_null), "session", where)
            print("parsed", parsed.declaration.suite_name)
            try:
                await checks.aparse(declare(unknown), "session", where)
            except InvalidInput as exc:
                print("unknown refused", "unknown expectation type" in exc.detail)
        imported_in = []
        def watch(event, args):
            if event == "import" and args[0] == "great_expectations":
                imported_in.append(threading.get_ident())
        sys.addaudithook(watch)
        asyncio.run(main())
        print("imported off the loop", imported_in[0] != loop_thread[0])
        """
    )
    assert out.splitlines() == [
        "malformed refused False",
        "parsed s",
        "unknown refused True",
        "imported off the loop True",
    ]


def test_a_platform_imports_gx_at_start_only_when_its_checks_declare_a_gate(
    tmp_path: Path,
) -> None:
    """No speculative warm-up: a platform that declares no data-quality check never
    imports GX, not even in a thread of its own; one that does has it warm once started."""
    gate = declare()
    out = run_python(
        f"""
        import asyncio, sys, threading
        from limit_graph.core.settings import load_settings
        from limit_graph.orchestration.platform import Platform

        async def start(home, checks):
            settings = load_settings(
                environ={{}}, home=home, admin_api_key="k" * 32, storage__type="memory",
                governance__checks=checks,
            )
            platform = await Platform.start(settings)
            await platform.close()

        asyncio.run(start({str(tmp_path / "plain")!r}, []))
        for thread in threading.enumerate():
            if thread is not threading.main_thread():
                thread.join(60)
        print("without a gate", "great_expectations" in sys.modules)
        asyncio.run(start({str(tmp_path / "gated")!r}, [{gate!r}]))
        print("with a gate", "great_expectations" in sys.modules)
        """
    )
    assert out.splitlines() == ["without a gate False", "with a gate True"]
