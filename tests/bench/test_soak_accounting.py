"""The soak's verdict can fail: an accepted execution missing from any reading is lost,
one listed, stored or ended twice is recorded twice (``bench/soak_accounting.py``); a
process gone before a reading counts as unknown, not as growth (``bench/soak_procs.py``)."""

from __future__ import annotations

from collections import Counter

from bench.soak_accounting import StoreView, account
from bench.soak_clients import Accepted
from bench.soak_procs import ProcessSeries

SESSION = "5f0e6c1e-6a55-4f67-9d2c-0d7b9b4b1a10"
IDS = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(6)]


def _accepted() -> Accepted:
    accepted = Accepted()
    for n, execution_id in enumerate(IDS):
        accepted.execution(execution_id, SESSION, key=f"soak-{n}")
    return accepted


def _store(entries: dict[str, int], rows: dict[str, int] | None = None) -> StoreView:
    view = StoreView()
    for execution_id in IDS:
        view.rows[execution_id] = (rows or {}).get(execution_id, 1)
        view.key_rows[f"soak-{IDS.index(execution_id)}"] = [execution_id]
        view.entries[execution_id] = Counter({"execution.succeeded": entries.get(execution_id, 1)})
    return view


def test_every_execution_read_back_once_is_neither_lost_nor_twice() -> None:
    listed = {execution_id: ["succeeded"] for execution_id in IDS}
    counted = account(_accepted(), listed, _store({}))
    assert (counted.accepted, counted.lost, counted.twice) == (6, {}, {})
    assert counted.entries == 6 and counted.not_final == 0


def test_each_way_of_losing_or_doubling_an_execution_is_named() -> None:
    accepted = _accepted()
    listed = {execution_id: ["succeeded"] for execution_id in IDS[1:]}
    listed[IDS[3]] = ["succeeded", "succeeded"]
    store = _store({IDS[2]: 0, IDS[4]: 2}, rows={IDS[1]: 0})
    store.key_rows["soak-5"] = [IDS[5], IDS[0]]
    counted = account(accepted, listed, store)
    assert counted.lost == {
        IDS[0]: "not in its session's results",
        IDS[1]: "no row in limit_executions",
        IDS[2]: "final, but no final ledger entry",
    }
    assert counted.twice == {
        IDS[3]: "listed 2 times in results",
        IDS[4]: "2 final ledger entries",
        IDS[5]: "2 rows with idempotency key soak-5",
    }


def test_a_process_that_is_gone_reads_as_unknown_not_as_growth() -> None:
    series = ProcessSeries("gone", pid=2**22 + 1)
    series.take()
    series.take()
    assert series.rss_mib(0) is None and series.growth(0) is None and series.cpu_s() is None
