"""A policy decision with 1,000 policies loaded, against the issue's targets.

The default policies plus `--tenants` tenants x `--per-tenant` policies of their own
(1,013 by default), spread over the actions the way tenants write them: forbids on
agent runs by input class, backend or agent, group permits on sessions, audit, keys
and quotas, state rules on archive and grant.  Requests are what the routes and the
pre-task check ask: `agent.execute` in a session (the largest request), and actions on
sessions and tenants, by authors in a group named by their tenant's policies.

- cached: the platform's authorizer answering a question it has met before (it
  remembers decisions by the domain facts they were taken on);
- uncached: a question never met (every one names another session): the Cedar
  request built, the slice evaluated, the answer remembered;
- the engine alone, sliced and unsliced (every platform and tenant policy of the
  principal's tenant evaluated), and building a request, for scale.

Each row is the median over `--repeat` runs of each run's p50 and p99.
``python -m bench.authorization`` prints the table.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from limit_graph.core.identity import PolicyRecord
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer, Question
from limit_graph.governance.policy import (
    AuthzRequest,
    CedarEngine,
    EntityRef,
    PolicyEngine,
    agent_request,
    default_policies,
    session_request,
    tenant_request,
)
from limit_graph.storage.memory import MemoryStorage

CACHED_TARGET_US = 100.0
UNCACHED_TARGET_US = 1000.0
WRITTEN = datetime(2026, 1, 1, tzinfo=UTC)

# What tenants write, one policy each; ``{t}`` is the tenant, ``{k}`` the round.
TENANT_POLICIES = [
    (
        "no-class-{k}",
        'forbid (principal, action == Action::"agent.execute", resource) '
        'when {{ context.input_classes.contains("class-{k}") }};',
    ),
    (
        "team-{k}-runs",
        'permit (principal in Group::"{t}/team-{k}", '
        'action in [Action::"session.execute", Action::"workflow.run"], resource is Session) '
        'when {{ resource.state == "active" }};',
    ),
    (
        "team-{k}-audit",
        'permit (principal in Group::"{t}/team-{k}", action == Action::"audit.read", resource);',
    ),
    (
        "keep-completed-{k}",
        'forbid (principal, action == Action::"session.archive", resource is Session) '
        'when {{ resource.state == "completed" }} unless {{ principal in Role::"admin" }};',
    ),
    (
        "team-{k}-backends",
        'forbid (principal in Group::"{t}/team-{k}", action == Action::"agent.execute", '
        'resource) unless {{ context.backend == "local" || context.target_family == "aer" '
        '|| context.target_family == "fake" }};',
    ),
    (
        "agent-{k}-operators",
        'forbid (principal, action == Action::"agent.execute", resource == Agent::"agent-{k}") '
        'unless {{ principal in Role::"operator" }};',
    ),
    (
        "team-{k}-keys",
        'permit (principal in Group::"{t}/team-{k}", action == Action::"key.manage", resource);',
    ),
    (
        "team-{k}-quotas",
        'permit (principal in Group::"{t}/team-{k}", action == Action::"quota.write", resource);',
    ),
    (
        "grants-while-active-{k}",
        'forbid (principal, action == Action::"session.grant", resource) '
        'when {{ resource.state != "active" }};',
    ),
    (
        "policies-by-admins-{k}",
        'forbid (principal, action == Action::"policy.write", resource) '
        'unless {{ principal in Role::"admin" }};',
    ),
]


@dataclass(frozen=True)
class _Session:
    id: uuid.UUID
    tenant: str
    owner: str
    state: str
    owner_id: uuid.UUID | None


def policies(tenants: int, per_tenant: int) -> list[PolicyRecord]:
    """The defaults plus ``per_tenant`` policies for each of ``tenants`` tenants."""
    records = default_policies(at=WRITTEN)
    for n in range(tenants):
        tenant = f"tenant-{n:02d}"
        for i in range(per_tenant):
            name, text = TENANT_POLICIES[i % len(TENANT_POLICIES)]
            k = i // len(TENANT_POLICIES)
            records.append(
                PolicyRecord(
                    id=name.format(k=k),
                    version=1,
                    tenant=tenant,
                    text=text.format(t=tenant, k=k),
                    updated_by="bench",
                    updated_at=WRITTEN,
                )
            )
    return records


def _authors(tenants: int) -> list[Principal]:
    return [
        Principal(
            f"author-{n}",
            f"tenant-{n:02d}",
            frozenset({"author"}),
            id=uuid.uuid4(),
            groups=frozenset({"team-0"}),
        )
        for n in range(tenants)
    ]


def _asker(authors: Sequence[Principal]) -> Callable[[int, uuid.UUID], AuthzRequest]:
    """The ``n``-th question, about the session ``sid`` (same n and sid: same question)."""

    def ask(n: int, sid: uuid.UUID) -> AuthzRequest:
        who = authors[n % len(authors)]
        session = _Session(sid, who.tenant, who.name, "active", who.id)
        kind = n % 4
        if kind in (0, 1):
            target = "aer" if kind == 0 else "fake:fake_brisbane"
            return agent_request(
                who, "echo", session, backend="quantum", target=target, input_classes={"public"}
            )
        if kind == 2:
            return session_request(who, "session.execute", session)
        return tenant_request(who, "audit.read")

    return ask


def _questions(
    authors: Sequence[Principal], ask: Callable[[int, uuid.UUID], AuthzRequest]
) -> Callable[[int, uuid.UUID], tuple[Principal, Question]]:
    """The ``n``-th question as the platform's authorizer is asked it: the facts it is
    remembered by, and how to build the Cedar request if it is new."""
    kinds = ("agent.execute", "agent.execute", "session.execute", "audit.read")
    resources = ("Agent", "Agent", "Session", "Tenant")

    def question(n: int, sid: uuid.UUID) -> tuple[Principal, Question]:
        who = authors[n % len(authors)]
        kind = n % 4
        resource = EntityRef(resources[kind], who.tenant if kind == 3 else str(sid))
        facts = (kind, sid, who.tenant, "active", who.id)
        return who, Question(kinds[kind], resource, facts, lambda: ask(n, sid))

    return question


def _time_authorizer(
    authorizer: Authorizer,
    question: Callable[[int, uuid.UUID], tuple[Principal, Question]],
    sessions: Sequence[uuid.UUID],
) -> list[float]:
    """Each question formed and decided, as a route or the pre-task check does."""
    samples = []
    clock = time.perf_counter_ns
    for n, sid in enumerate(sessions):
        started = clock()
        who, asked = question(n, sid)
        authorizer.decide(who, asked)
        samples.append((clock() - started) / 1000)
    return samples


async def _no_record(_: object) -> None:
    return None


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def _time(
    engine: PolicyEngine, requests: Sequence[AuthzRequest], tenants: Sequence[str]
) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for request, tenant in zip(requests, tenants, strict=True):
        started = clock()
        engine.decide(request, tenant=tenant)
        samples.append((clock() - started) / 1000)
    return samples


def measure(
    tenants: int = 50, per_tenant: int = 20, samples: int = 5000
) -> dict[str, tuple[float, float]]:
    """(p50 µs, p99 µs) of each row, plus the policy count and load time as rows."""
    records = policies(tenants, per_tenant)
    started = time.perf_counter()
    sliced = CedarEngine(records)
    load_ms = (time.perf_counter() - started) * 1000
    changed = [
        *records[:-1],
        records[-1].model_copy(update={"version": 2, "text": records[-1].text + "\n"}),
    ]
    started = time.perf_counter()
    sliced.load(changed)
    reload_ms = (time.perf_counter() - started) * 1000
    unsliced = CedarEngine(records, sliced=False)
    # For scale only: every policy in one set for everyone (tenants' policies renamed
    # into platform ones), what a decision would cost with neither slices nor tenants.
    flat = CedarEngine(
        [
            record.model_copy(update={"tenant": None, "id": f"{record.tenant}.{record.id}"})
            if record.tenant
            else record
            for record in records
        ],
        sliced=False,
    )
    authors = _authors(tenants)
    ask = _asker(authors)
    of = [authors[n % len(authors)].tenant for n in range(samples)]

    def fresh() -> list[AuthzRequest]:
        return [ask(n, uuid.uuid4()) for n in range(samples)]

    question = _questions(authors, ask)
    authorizer = Authorizer(sliced, MemoryStorage().identity, _no_record)
    known = [uuid.uuid4() for _ in range(samples)]
    _time_authorizer(authorizer, question, known)
    hit = _time_authorizer(authorizer, question, known)
    miss = _time_authorizer(authorizer, question, [uuid.uuid4() for _ in range(samples)])
    alone = _time(sliced, fresh(), of)
    whole = _time(unsliced, fresh(), of)
    everything = _time(flat, fresh(), of)
    build = []
    for n in range(samples):
        begun = time.perf_counter_ns()
        ask(n, uuid.uuid4())
        build.append((time.perf_counter_ns() - begun) / 1000)
    return {
        "cached": _percentiles(hit),
        "uncached": _percentiles(miss),
        "engine, sliced": _percentiles(alone),
        "engine, unsliced": _percentiles(whole),
        "engine, one set": _percentiles(everything),
        "build": _percentiles(build),
        "load": (load_ms, float(len(records))),
        "reload": (reload_ms, 1.0),
    }


def median_of(runs: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    return {
        name: (
            statistics.median(run[name][0] for run in runs),
            statistics.median(run[name][1] for run in runs),
        )
        for name in runs[0]
    }


def rows(measured: dict[str, tuple[float, float]], repeat: int) -> list[str]:
    load_ms, count = measured["load"]
    lines = [
        f"| policy decision, {count:,.0f} policies loaded (median of {repeat}) | p50 µs "
        "| p99 µs | target p50 | vs target |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    described = [
        ("cached", "cached (a question seen before)", CACHED_TARGET_US),
        ("uncached", "uncached (a cache miss each time)", UNCACHED_TARGET_US),
        ("engine, sliced", "engine alone, sliced by (tenant, action)", None),
        ("engine, unsliced", "engine alone, unsliced (the tenant's and the platform's)", None),
        ("engine, one set", "for scale: Cedar over all of them in one set", None),
        ("build", "building the request (entities)", None),
    ]
    for key, name, target in described:
        p50, p99 = measured[key]
        if target is None:
            lines.append(f"| {name} | {p50:,.0f} | {p99:,.0f} | | |")
        else:
            verdict = "ok" if p50 < target else "OVER"
            lines.append(
                f"| {name} | {p50:,.0f} | {p99:,.0f} | {target:,.0f} | "
                f"{p50 / target:.2f}x ({verdict}) |"
            )
    lines.append(f"| loading and slicing them all (ms) | {load_ms:,.0f} | | | |")
    reload_ms, _ = measured["reload"]
    lines.append(f"| reloading after one policy changed (ms) | {reload_ms:,.0f} | | | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.authorization")
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--per-tenant", type=int, default=20)
    parser.add_argument("--samples", type=int, default=5000, help="decisions timed per row")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [measure(args.tenants, args.per_tenant, args.samples) for _ in range(args.repeat)]
    for line in rows(median_of(runs), args.repeat):
        print(line)


if __name__ == "__main__":
    main()
