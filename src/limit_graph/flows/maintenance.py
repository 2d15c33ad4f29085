"""Scheduled maintenance flows: archive idle sessions, verify the ledger, expire caches.

Each is a ``limit-maintenance`` flow that asks the platform's REST API to do the work
(``POST /maintenance/...``) with the runner credentials (``LIMIT_API_URL`` and
``LIMIT_RUNNER_API_KEY``, else the ``limit-runner`` block), and logs and returns the
answer.  Their deployments and schedules are in ``prefect.yaml`` and
:mod:`limit_graph.deployments.apply`.  A ledger that does not verify fails its flow
run, so the alarm is a red run in the Prefect UI (and whatever automation follows).

``verify_ledger`` answers the platform's report -- ``ok``, ``size``, ``first_bad``,
``detail`` and how many ``checkpoints``, ``external`` copies and ``erased`` payloads it
checked -- which the platform also records as a ``ledger.verified`` ledger entry; the
flow shows it as the markdown artifact ``ledger-verification`` of its run, whether the
ledger verifies or not.
"""

from __future__ import annotations

from typing import Any

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from limit_graph.blocks.backends import runner_endpoint

__all__ = [
    "FLOW_NAME",
    "LedgerVerificationFailed",
    "archive_idle_sessions",
    "expire_caches",
    "verify_ledger",
]

FLOW_NAME = "limit-maintenance"
TIMEOUT_S = 600.0
ARTIFACT_KEY = "ledger-verification"
_REPORT_ROWS = (
    ("ok", "verified"),
    ("size", "entries"),
    ("first_bad", "first bad entry"),
    ("detail", "detail"),
    ("checkpoints", "signed checkpoints"),
    ("external", "copies outside the database"),
    ("erased", "erased payloads"),
)


class LedgerVerificationFailed(RuntimeError):
    """The provenance ledger does not verify; the message names the first bad entry."""


async def _post(path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    url, key = await runner_endpoint()
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), headers={"X-API-Key": key}, timeout=TIMEOUT_S
    ) as client:
        try:
            response = await client.post(path, params=params)
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach LIMIT-Graph at {url}: {exc}") from exc
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


@flow(name=FLOW_NAME, persist_result=False)
async def archive_idle_sessions(idle_days: float = 7) -> dict[str, Any]:
    """Archive active and completed sessions with no activity for ``idle_days`` days."""
    answer = await _post("/maintenance/archive-idle", {"idle_days": idle_days})
    get_run_logger().info(
        "archived %d sessions idle for %s days (%d skipped)",
        len(answer["archived"]),
        idle_days,
        len(answer.get("skipped", [])),
    )
    return answer


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _report_markdown(answer: dict[str, Any]) -> str:
    """The verification report as the markdown table of its artifact."""
    verdict = "verifies" if answer.get("ok") else "does NOT verify"
    rows = [f"| {label} | {_cell(answer.get(key))} |" for key, label in _REPORT_ROWS]
    return "\n".join(
        [f"# The ledger {verdict}", "", "| check | result |", "| --- | --- |", *rows, ""]
    )


@flow(name=FLOW_NAME, persist_result=False)
async def verify_ledger() -> dict[str, Any]:
    """Verify the whole provenance ledger; show the report as the run's
    ``ledger-verification`` artifact; fail the run if any entry does not verify."""
    answer = await _post("/maintenance/verify-ledger")
    await acreate_markdown_artifact(
        markdown=_report_markdown(answer),
        key=ARTIFACT_KEY,
        description="The provenance ledger's verification (POST /maintenance/verify-ledger).",
    )
    logger = get_run_logger()
    if not answer["ok"]:
        logger.error(
            "ledger does not verify at entry %s: %s", answer["first_bad"], answer["detail"]
        )
        raise LedgerVerificationFailed(
            f"ledger of {answer['size']} entries breaks at entry {answer['first_bad']}: "
            f"{answer['detail']}"
        )
    logger.info("ledger verified: %d entries", answer["size"])
    return answer


@flow(name=FLOW_NAME, persist_result=False)
async def expire_caches() -> dict[str, Any]:
    """Delete expired cache and bookkeeping documents."""
    answer = await _post("/maintenance/expire-caches")
    get_run_logger().info("expired %d cached documents", answer["expired"])
    return answer
