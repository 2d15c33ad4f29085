"""The provenance ledger against its targets, each beside an anchor measured in the
same run (``docs/provenance.md`` says what the ledger is):

- **append** (:mod:`bench.ledger.append`): >= 20,000 entries/s on Postgres from 32
  concurrent writers through the group-commit writer; anchor: a plain batched
  ``INSERT`` of the same rows;
- **verify** (:mod:`bench.ledger.verify`): ``verify_ledger`` of 1,000,000 entries in
  < 10 s, on Postgres and SQLite; anchor: reading every row and hashing it once;
- **proofs** (:mod:`bench.ledger.proofs`): an inclusion proof at 1,000,000 entries in
  < 0.5 ms p50 in the process and < 5 ms p50 through the API, on Postgres and SQLite;
  anchors: a bare query round trip on the store's pool, a bare FastAPI ``GET``;
- **execute** (:mod:`bench.ledger.execute`): the ledger adds < 10 % to an in-process
  local ``echo`` execute; anchor: the same execute without the entries.

The big ledger is made once (:mod:`bench.ledger.build`) and loaded into a fresh
Postgres database and a SQLite file.  Every Postgres database is the bench's own
(``limit_bench_*``), dropped afterwards; when the server does not answer, the SQLite
rows run alone.  ``python -m bench.ledger [--quick]``; ``make bench`` runs it too
(``--ledger quick|full|off``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.ledger import append, build, execute, proofs, verify
from bench.ledger.databases import fresh_postgres, postgres_reachable, sqlite_url

__all__ = ["SIZES", "Sizes", "run"]


@dataclass(frozen=True)
class Sizes:
    entries: int
    """The big ledger's entries (verification and proofs)."""
    append_s: float
    append_repeat: int
    verify_repeat: int
    proofs: int
    http_proofs: int
    executes: int
    execute_rounds: int
    writers: int = 32


SIZES = {
    "full": Sizes(1_000_000, 4.0, 3, 3, 1000, 1000, 1000, 5),
    "quick": Sizes(50_000, 1.5, 1, 1, 300, 300, 300, 3),
    "tiny": Sizes(2_000, 0.3, 1, 1, 20, 20, 20, 1),
}
"""``full`` for ``make bench`` (about 5 minutes here), ``quick`` for a look (about one),
``tiny`` for the test that keeps this bench running."""


def run(workdir: Path, sizes: Sizes, say: Callable[[str], None] = print) -> None:
    """Every ledger bench, each table handed to ``say`` line by line as it is done."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    unreachable = postgres_reachable()

    def table(lines: list[str]) -> None:
        for line in lines:
            say(line)
        say("")

    say(f"## The ledger ({sizes.entries:,} entries)")
    say("")
    if unreachable is not None:
        say(f"Postgres does not answer ({unreachable}): its rows are left out.")
        say("")
    else:
        table(append.rows(append.measure(sizes.writers, sizes.append_s, sizes.append_repeat)))
    rows = build.make_rows(sizes.entries)
    say(
        f"The big ledger: {rows.size:,} entries made in {rows.seconds['entries']:.1f} s "
        f"(two processes), their tree and {len(rows.checkpoints):,} signed checkpoints in "
        f"{rows.seconds['tree']:.1f} s."
    )
    say("")
    checked: list[verify.VerifyResult] = []
    proven: proofs.ProofResult | None = None
    if unreachable is None:
        with fresh_postgres("ledger") as url:
            ledger = build.load_postgres(url, rows)
            checked.append(verify.measure(ledger, "Postgres", sizes.verify_repeat))
            proven = proofs.measure(
                url, rows.size, workdir / "proofs", sizes.proofs, sizes.http_proofs
            )
    sqlite = build.load_sqlite(sqlite_url(build.sqlite_file(workdir / "sqlite")), rows)
    del rows
    checked.append(verify.measure(sqlite, "SQLite", sizes.verify_repeat))
    proven_sqlite = proofs.measure(
        sqlite.url,
        sqlite.size,
        workdir / "proofs-sqlite",
        sizes.proofs,
        sizes.http_proofs,
        database="SQLite",
    )
    shutil.rmtree(workdir / "sqlite", ignore_errors=True)
    table(verify.rows(checked))
    for result in (proven, proven_sqlite):
        if result is not None:
            table(proofs.rows(result))
    costs = {
        "SQLite": execute.run(
            workdir / "execute-sqlite",
            sqlite_url(workdir / "execute-sqlite" / "limit.db"),
            sizes.executes,
            sizes.execute_rounds,
        ),
        "SQLite, lineage on (the default)": execute.run(
            workdir / "execute-lineage",
            sqlite_url(workdir / "execute-lineage" / "limit.db"),
            sizes.executes,
            sizes.execute_rounds,
            lineage=True,
        ),
    }
    if unreachable is None:
        with fresh_postgres("execute") as url:
            costs["Postgres"] = execute.run(
                workdir / "execute-postgres", url, sizes.executes, sizes.execute_rounds
            )
    table(execute.rows(costs))
    say(f"The ledger's benches took {time.monotonic() - started:.0f} s.")
