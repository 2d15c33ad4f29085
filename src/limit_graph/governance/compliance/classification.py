"""``data-classification``: inputs tagged ``pii`` or ``restricted`` run only where cleared.

An input is tagged by the agent's schema (``Field(json_schema_extra={"classification":
"pii"})``) or by the session's ``classification`` (input name → class).  Each class is
cleared for backend kinds (``local``) or instances (``remote:eu-*``); an execution
carrying a tagged input passes when its backend kind is cleared, or when every instance
it may be routed to is.  The platform's clearances (``[governance] clearances``) always
apply; a declaration in a session's policies can narrow them further, never widen them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.compliance import DataClass
from limit_graph.core.errors import PolicyDenied
from limit_graph.core.models import CheckResult
from limit_graph.governance.compliance.types import (
    ContentContext,
    Declared,
    matches_any,
    parse_settings,
)

__all__ = ["DataClassification"]


class ClassificationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pii: list[str] | None = Field(default=None, description="Where pii inputs may run.")
    restricted: list[str] | None = Field(
        default=None, description="Where restricted inputs may run."
    )


def _cleared(ctx: ContentContext, patterns: Sequence[str]) -> bool:
    kind = ctx.backend.value
    if matches_any(kind, patterns):
        return True
    places = [f"{kind}:{name}" for name in ctx.instances]
    return bool(places) and all(matches_any(place, patterns) for place in places)


class DataClassification:
    id = "data-classification"

    def __init__(self, clearances: Mapping[DataClass, Sequence[str]], declared: Declared) -> None:
        self.clearances: dict[str, list[str]] = {k: list(v) for k, v in clearances.items()}
        self.declared = declared

    @classmethod
    def parse(
        cls, declaration: Mapping[str, Any], declared: Declared, loc: Sequence[str | int]
    ) -> DataClassification:
        settings = parse_settings(ClassificationSettings, declaration, declared, loc)
        clearances: dict[DataClass, list[str]] = {}
        if settings.pii is not None:
            clearances["pii"] = settings.pii
        if settings.restricted is not None:
            clearances["restricted"] = settings.restricted
        return cls(clearances, declared)

    async def evaluate(self, ctx: ContentContext) -> PolicyDenied | None:
        tagged = ctx.agent.classified_given(ctx.inputs, ctx.session.config.classification)
        if not tagged:
            return None
        refused: list[str] = []
        for name, tag in sorted(tagged.items()):
            patterns = self.clearances.get(tag)
            if patterns is not None and not _cleared(ctx, patterns):
                refused.append(f"{name} ({tag}: cleared for {', '.join(patterns) or 'nothing'})")
        where = ctx.backend.value + (f" ({', '.join(ctx.instances)})" if ctx.instances else "")
        detail = f"{', '.join(f'{n}={t}' for n, t in sorted(tagged.items()))} on {where}"
        ctx.results.append(
            CheckResult(
                check=self.id,
                passed=not refused,
                policy_ids=[self.id],
                detail=f"{detail} ({self.declared})",
            )
        )
        if not refused:
            return None
        return PolicyDenied(
            f"classified inputs may not run on {where}: {'; '.join(refused)} "
            f"(declared in {self.declared})",
            [self.id],
        )
