"""``limit audit witness``: a witness with its own key that cosigns the ledger's
checkpoints, each only if it is consistent with the last one it cosigned.

Examples::

    limit audit witness key --state ./witness                  # make it, print its public key
    limit audit witness run --state ./witness --log-key ledger.pub
    limit audit witness run --state ./witness --once --json     # one checkpoint, for cron
    limit audit witness show --state ./witness                 # the last cosigned checkpoint

``run`` exits 0 once it has cosigned (with ``--once``), 1 for a usage or state
problem, 2 when ``--once`` could not read the log after every retry, and 3 when it
refused a checkpoint -- a rollback, a split view, a forked history, a bad signature or
another origin -- naming the evidence file it wrote.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from limit_graph.cli.audit_cmd import audit_app
from limit_graph.cli.client import CliError
from limit_graph.cli.inputs import key_text
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption
from limit_graph.cli.output import print_json, print_text, tell
from limit_graph.cli.witness_http import HttpLog, pusher
from limit_graph.cli.witness_report import json_line, reporter, when

if TYPE_CHECKING:
    from limit_graph.orchestration.witness import Anchor, Witness

__all__ = ["witness_app"]

witness_app = typer.Typer(
    help="Run a witness with its own key: it cosigns each new checkpoint of the ledger "
    "only if it is consistent with the last one it cosigned (C2SP tlog-cosignature)."
)
audit_app.add_typer(witness_app, name="witness")

READ_TIMEOUT_S = 30.0
StateOption = Annotated[
    Path,
    typer.Option(
        "--state",
        help="The witness's state folder: its key, the log key it trusts, the last "
        "checkpoint it cosigned, evidence of what it refused.",
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="The witness key's name when it is made (default witness.limit-graph.local).",
    ),
]


@contextmanager
def _state_errors() -> Iterator[None]:
    from limit_graph.orchestration.witness import StateError

    try:
        yield
    except StateError as exc:
        raise CliError(str(exc)) from None


def _anchor(size: int | None, root: str | None) -> Anchor | None:
    from limit_graph.orchestration.witness import Anchor

    if (size is None) != (root is None):
        raise CliError("--expect-size and --expect-root pin one checkpoint: give both, or neither")
    if size is None or root is None:
        return None
    try:
        raw = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise CliError(f"--expect-root is not base64: {root!r}") from None
    if len(raw) != 32:
        raise CliError(f"--expect-root is {len(raw)} bytes: a root hash is 32")
    return Anchor(size, raw)


def _open_witness(
    state: Path, log_key: str | None, origin: str | None, name: str | None, expect: Anchor | None
) -> Witness:
    from limit_graph.orchestration.witness import TrustedLog, Witness

    with _state_errors():
        given = (
            TrustedLog.of(key_text(log_key, "the log key"), origin) if log_key is not None else None
        )
        witness = Witness(state, log=given, name=name, expect=expect)
    if origin is not None and origin != witness.log.origin:
        witness.close()
        raise CliError(
            f"this witness checks the origin {witness.log.origin!r} (pinned in {state}), "
            f"not {origin!r}"
        )
    if witness.made_key:
        tell(f"made the witness key {witness.cosigner.name}: {witness.verifier_key}")
    if witness.last is not None and expect is not None:
        tell(
            f"the state already holds a cosigned checkpoint (size "
            f"{witness.last.checkpoint.size:,}): --expect-size and --expect-root pin only the first"
        )
    return witness


@witness_app.command("run")
def witness_run(
    state: StateOption,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="The ledger's verifier key (or a file holding it), as GET /audit/checkpoint "
            "gives it in public_key: needed the first time, then pinned in the state.",
        ),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="The log's origin line (default: the log key's name)."),
    ] = None,
    name: NameOption = None,
    expect_size: Annotated[
        int | None,
        typer.Option("--expect-size", min=0, help="Pin the first checkpoint: its tree size."),
    ] = None,
    expect_root: Annotated[
        str | None,
        typer.Option("--expect-root", help="Pin the first checkpoint: its root hash (base64)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="Seconds between two reads of the log.")
    ] = 10.0,
    once: Annotated[
        bool, typer.Option("--once", help="Observe one checkpoint, then exit (0 or 3).")
    ] = False,
    push: Annotated[
        str | None,
        typer.Option("--push", help="POST each cosigned checkpoint (text/plain) to this URL."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line for each checkpoint.")
    ] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Cosign each new checkpoint of the ledger that is consistent with the last one.

    Reads the ledger's checkpoint every interval and cosigns a new one once its
    consistency proof from the last one cosigned verifies.  Exits 3 on a rollback, a
    split view, a forked history, a bad signature or another origin, naming the evidence
    file."""
    import httpx

    from limit_graph.cli.target import Configuration
    from limit_graph.client import LimitClient
    from limit_graph.orchestration.witness import GaveUp, Refusal, StateError, run_witness

    expect = _anchor(expect_size, expect_root)
    target = Configuration().target(url, api_key)
    witness = _open_witness(state, log_key, origin, name, expect)
    sdk = LimitClient(target.url, target.key, timeout=READ_TIMEOUT_S, verify=target.verify)
    http = httpx.Client(timeout=READ_TIMEOUT_S)
    try:
        run_witness(
            witness,
            HttpLog(sdk),
            reporter(as_json=as_json, once=once, push_url=push),
            interval_s=interval,
            once=once,
            push=pusher(push, http) if push else None,
        )
    except Refusal as exc:
        if as_json:
            json_line(
                {
                    "event": "refused",
                    "kind": exc.kind,
                    "detail": str(exc),
                    "evidence": str(exc.evidence) if exc.evidence else None,
                }
            )
        raise CliError(f"refused: {exc}", exit_code=3) from None
    except GaveUp as exc:
        raise CliError(str(exc), exit_code=2) from None
    except StateError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        tell("stopped")
        raise typer.Exit(130) from None
    finally:
        http.close()
        sdk.close()
        witness.close()


@witness_app.command("key")
def witness_key(state: StateOption, name: NameOption = None, as_json: JsonOption = False) -> None:
    """Print the witness's verifier key, making the key if there is none.

    The key is a cosignature/v1 (type 0x04) verifier key: give it to whoever checks
    cosignatures."""
    from limit_graph.orchestration.witness import KEY_FILE, load_or_make_key

    with _state_errors():
        cosigner, made = load_or_make_key(state, name)
    verifier_key = cosigner.verifier().verifier_key()
    if as_json:
        print_json(
            {
                "name": cosigner.name,
                "key_id": cosigner.key_id.hex(),
                "verifier_key": verifier_key,
                "made": made,
            }
        )
    else:
        print_text(verifier_key)
    if made:
        tell(f"made a new witness key in {state / KEY_FILE} (keep that file secret)")


@witness_app.command("show")
def witness_show(state: StateOption, as_json: JsonOption = False) -> None:
    """Print the last checkpoint the witness cosigned.

    The note is printed as kept, with the log's signature and the witness's
    cosignature, both checked before it is printed."""
    from limit_graph.orchestration.witness import KEY_FILE, read_checkpoint, read_key, read_log

    if not (state / KEY_FILE).is_file():
        raise CliError(f"{state} holds no witness (`limit audit witness key --state` makes one)")
    with _state_errors():
        verifier = read_key(state / KEY_FILE).verifier()
        log = read_log(state)
        kept = read_checkpoint(state, log, verifier) if log is not None else None
    if kept is None or log is None:
        raise CliError(f"the witness in {state} has cosigned no checkpoint yet")
    if as_json:
        print_json(
            {
                "origin": kept.checkpoint.origin,
                "tree_size": kept.checkpoint.size,
                "root_hash": base64.b64encode(kept.checkpoint.root_hash).decode(),
                "cosigned_at": when(kept.timestamp),
                "note": kept.note,
                "witness_key": verifier.verifier_key(),
                "log_key": log.verifier_key,
            }
        )
        return
    sys.stdout.write(kept.note)
    sys.stdout.flush()
    tell(f"size {kept.checkpoint.size:,}, cosigned at {when(kept.timestamp)} by {verifier.name}")
