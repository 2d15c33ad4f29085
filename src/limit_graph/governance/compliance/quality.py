"""``data-quality`` as a check: the declared input's table validated against its suite.

The validation itself (great-expectations, in a worker thread) is
:mod:`limit_graph.governance.compliance.data_quality`; this module binds it to an
execution: it finds the table in the input the declaration names, validates it, keeps
the result as the check's verdict, and refuses a failing table with a 422 listing each
failed expectation and what GX observed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from limit_graph.core.errors import CheckFailed, InvalidInput, PolicyDenied
from limit_graph.core.models import CheckResult
from limit_graph.governance.compliance import data_quality
from limit_graph.governance.compliance.types import ContentContext, Declared, invalid_declaration

__all__ = ["DataQuality"]


class DataQuality:
    id = data_quality.CHECK_ID

    def __init__(
        self, declaration: data_quality.DataQualityDeclaration, declared: Declared
    ) -> None:
        self.declaration = declaration
        self.declared = declared

    @classmethod
    def parse(
        cls, declaration: Mapping[str, Any], declared: Declared, loc: Sequence[str | int]
    ) -> DataQuality:
        try:
            parsed = data_quality.parse_data_quality(declaration)
        except InvalidInput as exc:
            raise invalid_declaration(declared, loc, exc.detail, exc.errors) from None
        return cls(parsed, declared)

    def _refuse(
        self, ctx: ContentContext, detail: str, failures: list[dict[str, Any]]
    ) -> CheckFailed:
        ctx.results.append(
            CheckResult(check=self.id, passed=False, policy_ids=[self.id], detail=detail)
        )
        return CheckFailed(f"{detail} (declared in {self.declared})", [self.id], failures)

    async def evaluate(self, ctx: ContentContext) -> PolicyDenied | None:
        name = self.declaration.input
        suite = self.declaration.suite_name
        value = ctx.inputs.get(name)
        if value is None:
            return self._refuse(
                ctx,
                f"data-quality suite {suite!r} needs the table in input {name!r}, which is empty",
                [{"input": name, "problem": "missing"}],
            )
        try:
            table = data_quality.table_input(self.declaration, ctx.inputs, ctx.data_dir)
            report = await data_quality.validate_table(self.declaration, table)
        except InvalidInput as exc:
            return self._refuse(
                ctx, f"input {name!r}: {exc.detail}", [{"input": name, "problem": exc.detail}]
            )
        summary = (
            f"suite {suite!r} on input {name!r}: {report.successful} of {report.evaluated} "
            f"expectations met"
        )
        if report.passed:
            ctx.results.append(
                CheckResult(check=self.id, passed=True, policy_ids=[self.id], detail=summary)
            )
            return None
        failed = "; ".join(data_quality.describe_failure(f) for f in report.failures)
        return self._refuse(ctx, f"{summary}; failed: {failed}", list(report.failures))
