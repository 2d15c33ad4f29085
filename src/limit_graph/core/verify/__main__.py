"""``python -m limit_graph.core.verify ENTRY PROOF CHECKPOINT --key KEY``: check one
ledger entry offline; exit 0 saying what was shown, or 1 saying what failed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from limit_graph.core.ledger_leaf import encode_hash
from limit_graph.core.verify.checks import verify_entry
from limit_graph.core.verify.errors import VerificationError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m limit_graph.core.verify",
        description="Check that a ledger entry is in the tree of a signed checkpoint.",
    )
    parser.add_argument(
        "entry", type=Path, help="the entry as JSON (from /audit, a provenance page, a bundle)"
    )
    parser.add_argument(
        "proof",
        type=Path,
        help="the inclusion proof as JSON (/audit/proof/inclusion, or a provenance "
        "entry's proof list)",
    )
    parser.add_argument(
        "checkpoint", type=Path, help="the signed checkpoint note (/audit/checkpoint's note)"
    )
    parser.add_argument(
        "--key",
        required=True,
        help="the ledger's verifier key (<name>+<key id>+<base64>), or a file holding it",
    )
    parser.add_argument("--origin", help="the log's origin the checkpoint must name")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror or exc}") from None


def _key(given: str) -> str:
    path = Path(given)
    return _read(path).decode("utf-8", "replace") if path.is_file() else given


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status (0: verified, 1: not, with the reason)."""
    args = _parser().parse_args(argv)
    try:
        shown = verify_entry(
            _read(args.entry),
            _read(args.proof),
            _read(args.checkpoint),
            _key(args.key),
            origin=args.origin,
        )
    except VerificationError as exc:
        sys.stderr.write(f"not verified ({type(exc).__name__}): {exc}\n")
        return 1
    if args.json:
        answer = {
            "index": shown.index,
            "tree_size": shown.tree_size,
            "origin": shown.origin,
            "root": encode_hash(shown.root),
        }
        sys.stdout.write(json.dumps(answer) + "\n")
    else:
        sys.stdout.write(
            f"verified: entry {shown.index} is in the tree of {shown.tree_size} entries of "
            f"{shown.origin} (root {encode_hash(shown.root)}), signed by the given key\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
