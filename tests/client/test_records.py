"""What the SDK reads and sends, without a server: newer documents, specs, events, pages."""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import BaseModel

from limit_graph.client import Page, SpecProblem, Validation, paginate, parse_sse
from limit_graph.client.calls import workflow_body
from limit_graph.client.records import read_record
from limit_graph.core.models import Session, WorkflowRun

SESSION = {
    "id": str(uuid.uuid4()),
    "name": "s",
    "state": "active",
    "config": {"backends": ["local"], "tags": [], "colour": "blue"},
    "config_sha256": "0" * 64,
    "owner": "admin",
    "tenant": "default",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "added_later": {"any": "thing"},
}


def test_fields_a_newer_server_adds_are_left_out_at_any_depth() -> None:
    session = read_record(Session, SESSION)
    assert session.name == "s" and session.config.tags == []
    run = read_record(
        WorkflowRun,
        {
            "id": str(uuid.uuid4()),
            "session_id": SESSION["id"],
            "name": "w",
            "state": "failed",
            "params": {},
            "spec": {"kept": "as is", "steps": []},
            "spec_sha256": "0" * 64,
            "steps": [
                {"id": "a", "state": "failed", "error": {"type": "E", "message": "m", "new": 1}},
                {"id": "b", "state": "skipped", "progress": 0.5},
            ],
            "actor": "admin",
            "created_at": "2026-01-01T00:00:00Z",
            "links": {"self": "/x"},
        },
    )
    assert run.step("a").error is not None and run.step("a").error.message == "m"
    assert run.spec == {"kept": "as is", "steps": []}  # a free-form field keeps everything


def test_a_spec_is_sent_as_an_object_or_as_its_text(tmp_path: Path) -> None:
    class Spec(BaseModel):
        name: str
        description: str | None = None

    assert workflow_body(Spec(name="m")) == {"name": "m"}
    assert workflow_body({"name": "d"}) == {"name": "d"}
    assert workflow_body("name: t\n") == "name: t\n"
    (tmp_path / "w.yaml").write_text("name: f\n", encoding="utf-8")
    assert workflow_body(tmp_path / "w.yaml") == "name: f\n"


def test_a_refusal_reads_as_a_validation_with_its_problems() -> None:
    refused = Validation.from_problem(
        {
            "detail": "2 problems",
            "errors": [
                {"step": "a", "field": "/steps/0/agent", "msg": "no agent", "line": 3},
                {"loc": ["body", "params"], "msg": "not an object", "type": "dict_type"},
            ],
        }
    )
    assert not refused.valid and refused.detail == "2 problems"
    assert refused.errors == [
        SpecProblem(step="a", field="/steps/0/agent", msg="no agent", line=3),
        SpecProblem(field="/body/params", msg="not an object", type="dict_type"),
    ]


def test_events_with_several_data_lines_and_no_final_blank_line() -> None:
    lines = ["retry: 100", 'data: {"a":', "data: 1}", "", "id: 9", "data: {}"]
    assert list(parse_sse(lines)) == [{"data": '{"a":\n1}'}, {"id": "9", "data": "{}"}]


def test_pages_are_followed_until_the_last() -> None:
    asked: list[str | None] = []

    def fetch(*, cursor: str | None = None, size: int) -> Page[int]:
        asked.append(cursor)
        start = int(cursor or 0)
        end = min(start + size, 5)
        return Page(list(range(start, end)), str(end) if end < 5 else None)

    assert list(paginate(fetch, size=2)) == [0, 1, 2, 3, 4]
    assert asked == [None, "2", "4"]
