"""``/metrics`` of ``limit up`` with two API processes answers for both, whichever of
them the connection reaches: counters are summed over the processes (prometheus-client's
multiprocess mode), so a scrape never sees one process's share and a series never goes
back from one scrape to the next."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.api_processes import api_pids, start_workers
from tests.fixtures.cli import Server
from tests.fixtures.processes import stop

HEALTH = {"method": "GET", "route": "/health", "status": "200"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_workers(tmp_path_factory.mktemp("metrics-workers"))
    yield running
    stop(running.process, sig=signal.SIGINT)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """One ``/metrics`` over a fresh connection: samples by name."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def health_requests(samples: dict[str, list[tuple[dict[str, str], float]]]) -> float:
    return sum(
        value
        for labels, value in samples.get("limit_http_requests_total", [])
        if HEALTH.items() <= labels.items()
    )


def test_every_scrape_counts_the_requests_of_both_processes(server: Server) -> None:
    before = health_requests(scrape(server.url))
    served: dict[int, int] = {}
    for _ in range(40):  # fresh connections: the kernel hands them to either process
        pid = httpx.get(f"{server.url}/health", timeout=30).json()["process"]["pid"]
        served[pid] = served.get(pid, 0) + 1
    assert set(served) == set(api_pids(server)), served  # both processes served some
    totals = []
    for _ in range(12):
        samples = scrape(server.url)
        totals.append(health_requests(samples))
        assert [v for _, v in samples["limit_ledger_entries"]][0] >= 1
        running = {labels["backend"] for labels, _ in samples["limit_executions_running"]}
        assert running == {"local", "remote", "quantum"}
        assert all(name.startswith("limit_") for name in samples), sorted(samples)
    assert totals == [before + 40] * len(totals), (before, served, totals)
