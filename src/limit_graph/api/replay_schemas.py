"""The answer of the replay routes: the original, its replay, and whether they agree."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from limit_graph.core.models import Execution
from limit_graph.orchestration.replay import Replay

__all__ = ["ReplayDifference", "ReplayOut"]


class ReplayDifference(BaseModel):
    field: str = Field(
        description="What differs: `state`, `instance`, `run_context`, or a run-context "
        "path such as `versions.qiskit-aer`, `target.snapshot_id`, `seed`."
    )
    original: Any
    replay: Any


class ReplayOut(BaseModel):
    original: Execution = Field(description="The execution as its final ledger entry records it.")
    replay: Execution = Field(description="The new execution (its `replay_of` names the original).")
    matches: bool = Field(description="Whether the two results' hashes are equal.")
    original_result_sha256: str = Field(
        description="SHA-256 of the original result's canonical JSON, without the fields "
        "that measure the run (durations, device job ids)."
    )
    replay_result_sha256: str | None = Field(
        description="The same of the replay's result; null when the replay did not succeed."
    )
    differences: list[ReplayDifference] = Field(
        description="What the replay ran with, or ended in, that the original did not."
    )

    @classmethod
    def of(cls, verdict: Replay) -> ReplayOut:
        return cls(
            original=verdict.original,
            replay=verdict.replay,
            matches=verdict.matches,
            original_result_sha256=verdict.original_result_sha256,
            replay_result_sha256=verdict.replay_result_sha256,
            differences=[
                ReplayDifference(field=d.field, original=d.original, replay=d.replay)
                for d in verdict.differences
            ],
        )
