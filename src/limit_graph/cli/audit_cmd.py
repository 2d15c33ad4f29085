"""``limit audit``: check what the provenance ledger says, and that it reproduces.

Each subcommand is one function registered on :data:`audit_app`; a new one (``verify``,
``prove``, ``export``, ...) is another ``@audit_app.command``, here or in a module of its
own that decorates the same app.

Examples::

    limit audit replay <execution-id>                     # exit 1 if the result differs
    limit audit replay <execution-id> --session <session-id> --json
    limit audit verify --public-key ledger.pub             # exit 1 naming the first bad entry
    limit audit prove 42                                   # entry 42's inclusion proof
    limit audit key --output ledger.pub                    # export the ledger's public key

>>> replay_path("4f0c8a8e-2d9b-4c31-9d8e-0a3d2b7f1e55", None)
'/executions/4f0c8a8e-2d9b-4c31-9d8e-0a3d2b7f1e55/replay'
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from limit_graph.cli.client import CliError
from limit_graph.cli.inputs import key_text, require_uuid
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption, call
from limit_graph.cli.output import print_json, print_table, print_text
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from limit_graph.orchestration.ledger_verify import LedgerReport

__all__ = ["audit_app", "replay_path"]

audit_app = typer.Typer(
    help="Check the provenance ledger: verify it, prove entries, export the trail and its "
    "report, witness its checkpoints, and replay an execution from its entry."
)


def replay_path(execution_id: str, session_id: str | None) -> str:
    """The route that replays ``execution_id`` (in ``session_id``, when it is known)."""
    try:
        execution = uuid.UUID(execution_id)
    except ValueError:
        raise CliError(f"{execution_id!r} is not an execution id (a UUID)") from None
    if session_id is None:
        return f"/executions/{execution}/replay"
    return f"/sessions/{require_uuid(session_id, 'session')}/executions/{execution}/replay"


def _print_verdict(verdict: dict[str, Any]) -> None:
    original, replay = verdict["original"], verdict["replay"]
    if verdict["matches"]:
        print_text(
            f"reproduced: replay {replay['id']} of {original['id']} gave the same result "
            f"(sha256 {verdict['original_result_sha256']})"
        )
    else:
        print_text(
            f"differs: replay {replay['id']} of {original['id']} ended {replay['state']} "
            f"with result sha256 {verdict['replay_result_sha256'] or '-'}, not "
            f"{verdict['original_result_sha256']}"
        )
    differences = verdict["differences"]
    if differences:
        print_table(
            ("field", "original", "replay"),
            [(d["field"], str(d["original"]), str(d["replay"])) for d in differences],
            whole=("field",),
        )


@audit_app.command("replay")
def audit_replay(
    execution_id: Annotated[str, typer.Argument(help="The execution to run again.")],
    session: Annotated[
        str | None, typer.Option("--session", help="Its session (found from the id if not given).")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Run a deterministic or seeded execution again from its ledger entry, as a new
    execution, and say whether the result reproduces and what differs (library versions,
    target snapshot).  Exits 1 when the result differs."""
    verdict = call(url, api_key, "POST", replay_path(execution_id, session))
    if as_json:
        print_json(verdict)
    else:
        _print_verdict(verdict)
    if not verdict["matches"]:
        raise typer.Exit(1)


async def _verify(
    settings: Settings, public_key: str | None, checkpoints: list[Path]
) -> tuple[LedgerReport, str]:
    from limit_graph.core import notes
    from limit_graph.orchestration.checkpoints import LATEST_NOTE, stored_verifier_key
    from limit_graph.orchestration.ledger_verify import verify_ledger
    from limit_graph.storage.factory import open_storage

    store = open_storage(settings)
    await store.start()
    try:
        key = public_key or await stored_verifier_key(store, settings.ledger.origin)
        against = "the given key" if public_key else "the key the database holds"
        verifiers = [notes.Verifier.from_verifier_key(key)] if key else []
        copies = checkpoints or [
            p for p in [settings.checkpoints_path / LATEST_NOTE] if p.is_file()
        ]
        external = [(str(p), p.read_text(encoding="utf-8")) for p in copies]
        report = await verify_ledger(
            store, verifiers=verifiers, origin=settings.ledger.origin, external=external
        )
    finally:
        await store.close()
    checked = f"signatures checked against {against}" if key else "no key to check against"
    return report, checked


@audit_app.command("verify")
def audit_verify(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (or LIMIT_CONFIG).")
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="The ledger's verifier key (or a file holding it), as exported: checkpoints "
            "must be signed by it (default: the key the database holds).",
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint note kept outside the database (repeatable; default: "
            "<checkpoint_dir>/latest.note).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute the whole tree from the entries the configured store holds, check every
    checkpoint's signature and their consistency, and those kept outside the database.
    Exits 1 naming the first bad entry."""
    try:
        settings = load_settings(config)
        trusted = key_text(public_key, "the public key") if public_key else None
        report, checked = asyncio.run(_verify(settings, trusted, checkpoint or []))
    except (ConfigError, ValueError) as exc:  # a bad key or note is a ValueError
        raise CliError(str(exc)) from exc
    if as_json:
        print_json({**dataclasses.asdict(report), "checked": checked})
    elif report.ok:
        print_text(
            f"the ledger verifies: {report.size:,} entries, {report.checkpoints} checkpoints "
            f"and {report.external} outside copies; {checked}"
            + (f"; {report.erased} payloads erased" if report.erased else "")
        )
    else:
        print_text(f"the ledger does not verify: {report.detail}")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("prove")
def audit_prove(
    index: Annotated[int, typer.Argument(help="The entry's index.", min=0)],
    size: Annotated[
        int | None, typer.Option("--size", help="The tree size (default: the checkpoint's).")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print the inclusion proof of an entry in the signed checkpoint (or a tree size),
    with the checkpoint, and check it here before printing it."""
    from limit_graph.core import merkle, notes
    from limit_graph.storage.ledger import decode_hash

    checkpoint = call(url, api_key, "GET", "/audit/checkpoint")
    tree = size or checkpoint["tree_size"]
    proof = call(
        url, api_key, "GET", "/audit/proof/inclusion", params={"index": index, "size": tree}
    )
    if tree == checkpoint["tree_size"]:
        verifier = notes.Verifier.from_verifier_key(checkpoint["public_key"])
        opened = notes.parse_checkpoint(notes.open_note(checkpoint["note"], [verifier]).text)
        merkle.verify_inclusion(
            index,
            tree,
            decode_hash(proof["leaf_hash"]),
            [decode_hash(h) for h in proof["hashes"]],
            opened.root_hash,
        )
    if as_json:
        print_json({"proof": proof, "checkpoint": checkpoint})
        return
    print_text(f"entry {index} in the tree of {tree:,} entries (leaf {proof['leaf_hash']}):")
    for n, digest in enumerate(proof["hashes"]):
        print_text(f"  {n:>2} {digest}")
    if tree == checkpoint["tree_size"]:
        print_text("verified against the signed checkpoint:")
        print_text(checkpoint["note"].rstrip("\n"))


async def _local_key(settings: Settings) -> str | None:
    from limit_graph.orchestration.checkpoints import stored_verifier_key
    from limit_graph.storage.factory import open_storage

    store = open_storage(settings)
    await store.start()
    try:
        return await stored_verifier_key(store, settings.ledger.origin)
    finally:
        await store.close()


@audit_app.command("key")
def audit_key(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the key to this file.")
    ] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="Read it from the configured store, not from the API."),
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (or LIMIT_CONFIG).")
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print the ledger's public key, in the note verifier-key format, to keep where the
    database's operator cannot change it and give to verifiers and witnesses."""
    if local or config is not None:
        try:
            key = asyncio.run(_local_key(load_settings(config)))
        except ConfigError as exc:
            raise CliError(str(exc)) from exc
        if key is None:
            raise CliError("the store holds no ledger key yet: start the platform once")
    else:
        key = str(call(url, api_key, "GET", "/audit/checkpoint")["public_key"])
    if output is None:
        print_text(key)
        return
    output.write_text(key + "\n", encoding="utf-8")
    print_text(f"wrote the ledger's public key to {output}")
