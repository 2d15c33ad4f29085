"""``python -m bench.ledger [--quick | --size tiny|quick|full]``: the ledger's benches alone."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.ledger import SIZES, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="limit-bench-ledger-") as workdir:
        run(Path(workdir), SIZES[args.size])


if __name__ == "__main__":
    main()
