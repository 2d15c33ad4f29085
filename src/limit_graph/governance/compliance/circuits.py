"""Circuit checks, read off the parsed circuits before anything is queued.

``circuit-limits`` caps width, depth, two-qubit gates and shots, and may restrict the
gate set, on the targets its ``targets`` patterns name (all targets when it names
none); the target's own limits (its width and shot cap, ``TargetLimits``) are checked
too.  A circuit over a limit can never pass as written, so the refusal is a 422 listing
each limit it breaks.  ``allowed-targets`` says where quantum work may run at all; a
target outside it is a 403.

>>> from limit_graph.governance.compliance.types import Declared
>>> check = CircuitLimits.parse({"check": "circuit-limits", "max_qubits": 7},
...                             Declared("session", 0), ["policies", 0])
>>> check.settings.max_qubits
7
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.compliance import CircuitProfile, TargetLimits
from limit_graph.core.errors import CheckFailed, PolicyDenied
from limit_graph.core.models import CheckResult
from limit_graph.governance.compliance.types import (
    ContentContext,
    Declared,
    matches_any,
    parse_settings,
)

__all__ = ["AllowedTargets", "CircuitLimits"]

ALWAYS_ALLOWED = frozenset({"measure", "barrier", "reset", "delay"})
"""Operations a ``gates`` list need not name: they are not gates."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CircuitLimitsSettings(_Settings):
    targets: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Target patterns it applies to (aer, fake:*, ibm:*); none: every target.",
    )
    max_qubits: int | None = Field(default=None, ge=1)
    max_depth: int | None = Field(default=None, ge=1)
    max_two_qubit_gates: int | None = Field(default=None, ge=0)
    max_shots: int | None = Field(default=None, ge=1, description="Shots of one execution.")
    gates: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The gates circuits may use, as written (measure and barrier always may).",
    )


class AllowedTargetsSettings(_Settings):
    targets: list[str] = Field(min_length=1, max_length=256)


def _breaches(
    index: int, circuit: CircuitProfile, settings: CircuitLimitsSettings
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for limit, actual in (
        ("max_qubits", circuit.num_qubits),
        ("max_depth", circuit.depth),
        ("max_two_qubit_gates", circuit.two_qubit_gates),
    ):
        allowed = getattr(settings, limit)
        if allowed is not None and actual > allowed:
            found.append({"pub": index, "limit": limit, "allowed": allowed, "actual": actual})
    if settings.gates is not None:
        extra = sorted(circuit.operations - set(settings.gates) - ALWAYS_ALLOWED)
        if extra:
            found.append(
                {"pub": index, "limit": "gates", "allowed": sorted(settings.gates), "actual": extra}
            )
    return found


def _target_breaches(
    limits: TargetLimits, circuits: Sequence[CircuitProfile]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for index, circuit in enumerate(circuits):
        if limits.num_qubits is not None and circuit.num_qubits > limits.num_qubits:
            found.append(
                {
                    "pub": index,
                    "limit": "target_qubits",
                    "allowed": limits.num_qubits,
                    "actual": circuit.num_qubits,
                }
            )
        if limits.max_shots is not None and circuit.shots > limits.max_shots:
            found.append(
                {
                    "pub": index,
                    "limit": "target_max_shots",
                    "allowed": limits.max_shots,
                    "actual": circuit.shots,
                }
            )
    return found


def _describe(failure: dict[str, Any]) -> str:
    what = failure["limit"]
    if what == "gates":
        return f"pubs[{failure['pub']}] uses {', '.join(failure['actual'])}, not allowed"
    name = what.removeprefix("max_").replace("_", " ")
    return f"pubs[{failure['pub']}] has {failure['actual']} {name} (at most {failure['allowed']})"


class CircuitLimits:
    id = "circuit-limits"

    def __init__(self, settings: CircuitLimitsSettings, declared: Declared) -> None:
        self.settings = settings
        self.declared = declared

    @classmethod
    def parse(
        cls, declaration: Mapping[str, Any], declared: Declared, loc: Sequence[str | int]
    ) -> CircuitLimits:
        return cls(parse_settings(CircuitLimitsSettings, declaration, declared, loc), declared)

    async def evaluate(self, ctx: ContentContext) -> PolicyDenied | None:
        profile, target = ctx.profile, ctx.target
        if profile is None or not profile.circuits:
            return None  # the agent runs no circuits: nothing to check
        if self.settings.targets and (
            target is None or not matches_any(target, self.settings.targets)
        ):
            return None
        failures: list[dict[str, Any]] = []
        for index, circuit in enumerate(profile.circuits):
            failures.extend(_breaches(index, circuit, self.settings))
        if self.settings.max_shots is not None and profile.shots > self.settings.max_shots:
            failures.append(
                {"limit": "max_shots", "allowed": self.settings.max_shots, "actual": profile.shots}
            )
        if profile.limits is not None:
            failures.extend(_target_breaches(profile.limits, profile.circuits))
        detail = f"declared in {self.declared}" + (f", on {target}" if target else "")
        ctx.results.append(
            CheckResult(check=self.id, passed=not failures, policy_ids=[self.id], detail=detail)
        )
        if not failures:
            return None
        reasons = "; ".join(
            _describe(f) if "pub" in f else f"{f['actual']} shots in all (at most {f['allowed']})"
            for f in failures
        )
        return CheckFailed(
            f"circuit limits of {target or 'the target'} refuse it: {reasons} ({detail})",
            [self.id],
            failures,
        )


class AllowedTargets:
    id = "allowed-targets"

    def __init__(self, settings: AllowedTargetsSettings, declared: Declared) -> None:
        self.settings = settings
        self.declared = declared

    @classmethod
    def parse(
        cls, declaration: Mapping[str, Any], declared: Declared, loc: Sequence[str | int]
    ) -> AllowedTargets:
        return cls(parse_settings(AllowedTargetsSettings, declaration, declared, loc), declared)

    async def evaluate(self, ctx: ContentContext) -> PolicyDenied | None:
        target = ctx.target
        if target is None:
            return None  # not quantum work
        allowed = matches_any(target, self.settings.targets)
        detail = f"{target} against {', '.join(self.settings.targets)} ({self.declared})"
        ctx.results.append(
            CheckResult(check=self.id, passed=allowed, policy_ids=[self.id], detail=detail)
        )
        if allowed:
            return None
        return PolicyDenied(
            f"target {target!r} is not allowed here: allowed are "
            f"{', '.join(self.settings.targets)} (declared in {self.declared})",
            [self.id],
        )
