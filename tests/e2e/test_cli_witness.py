"""``limit audit witness`` as an operator runs it, against ``limit up`` over HTTP.

The witness cosigns the ledger's checkpoint, then a larger one consistent with it;
then the same ledger key shows a second history -- a copy of the platform's home,
started beside it, that did other work -- and the witness refuses it (exit 3) with an
evidence file holding both signed notes.  Answers lost on the way are retried, a
cosigned checkpoint is pushed to a collector, and a log signed by another key is
refused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from limit_graph.core import notes
from tests.fixtures.cli import Server, clean_env, launch, run_limit
from tests.fixtures.live import free_port
from tests.fixtures.lossy_proxy import lossy_proxy

WITNESS_NAME = "witness.example.org/w1"


def _start(home: Path, xdg: Path) -> Server:
    """``limit up`` in ``home``, recording itself under ``xdg`` (not the user's)."""
    home.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(LIMIT_API_URL=url, XDG_STATE_HOME=str(xdg))
    return launch(home, env, url, "--bind", f"127.0.0.1:{port}")


def _ok_json(server: Server, *args: str) -> dict[str, Any]:
    done = server.limit(*args)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _work(server: Server, tag: str, executions: int = 2) -> None:
    sid = str(_ok_json(server, "session", "create", "--tag", tag)["id"])
    for n in range(executions):
        _ok_json(server, "exec", sid, "echo", "--inputs", json.dumps({"tag": tag, "n": n}))


def _witness(
    server: Server, state: Path, *args: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One round of the witness (``--once --json``) over ``server`` (or ``url``)."""
    key = (server.cwd / ".limit" / "admin.key").read_text().strip()
    return server.limit(
        "audit", "witness", "run", "--state", str(state), "--once", "--json",
        "--interval", "0.2", "--url", url or server.url, "--api-key", key, *args,
    )  # fmt: skip


def _lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def _cosigned_by(note: str, verifier_key: str) -> int:
    witness = notes.CosignatureVerifier.from_verifier_key(verifier_key)
    return notes.verify_cosignatures(notes.parse_note(note), [witness])[witness]


def test_the_witness_cosigns_growth_and_refuses_a_second_history(tmp_path: Path) -> None:
    state, xdg = tmp_path / "witness", tmp_path / "xdg"
    first_home, second_home = tmp_path / "a", tmp_path / "b"
    made = _make_key(first_home, xdg, state)
    witness_key = str(made["verifier_key"])

    server = _start(first_home, xdg)
    try:
        _work(server, "one")
        public_key = str(
            _ok_json(server, "audit", "prove", "0", "--json")["checkpoint"]["public_key"]
        )
        (tmp_path / "ledger.pub").write_text(public_key + "\n")
        done = _witness(server, state, "--log-key", str(tmp_path / "ledger.pub"))
        assert done.returncode == 0, done.stderr
        [first] = _lines(done)
        assert (first["event"], first["status"]) == ("cosigned", "trusted-on-first-use")
        assert _cosigned_by(first["note"], witness_key) > 0

        _work(server, "two")
        done = _witness(server, state)  # the log key is pinned now
        assert done.returncode == 0, done.stderr
        [grown] = _lines(done)
        assert (grown["status"], grown["previous_size"]) == ("consistent", first["tree_size"])
        assert grown["tree_size"] > first["tree_size"]
        notes.open_note(grown["note"], [notes.Verifier.from_verifier_key(public_key)])
    finally:
        server.stop()

    # A second home with the same ledger key and history so far, that goes its own way.
    shutil.copytree(first_home, second_home)
    log, fork = _start(first_home, xdg), _start(second_home, xdg)
    try:
        _work(log, "three")
        _work(fork, "other")
        done = _witness(log, state)
        assert done.returncode == 0, done.stderr
        [seen] = _lines(done)
        assert (seen["status"], seen["previous_size"]) == ("consistent", grown["tree_size"])
        kept = state.joinpath("checkpoint.note").read_bytes()

        refused = _witness(log, state, url=fork.url)
    finally:
        log.stop()
        fork.stop()
    assert refused.returncode == 3, refused.stderr
    [verdict] = _lines(refused)
    assert verdict["event"] == "refused" and verdict["kind"] == "split-view", verdict
    assert "error: refused: split view: the log signed size" in " ".join(refused.stderr.split())
    assert state.joinpath("checkpoint.note").read_bytes() == kept

    evidence = json.loads(Path(verdict["evidence"]).read_text())
    assert Path(verdict["evidence"]).parent == state / "evidence"
    last, received = evidence["last"], evidence["received"]
    assert last["tree_size"] == received["tree_size"] == seen["tree_size"]
    assert last["root_hash"] == seen["root_hash"] != received["root_hash"]
    assert last["note"] == kept.decode()
    # Both notes are signed by the ledger's key: together they prove the two histories.
    ledger_key = notes.Verifier.from_verifier_key(public_key)
    for note in (last["note"], received["note"]):
        notes.open_note(note, [ledger_key])
    assert evidence["signed_by_log"] is True and evidence["log_key"] == public_key

    shown = log.limit("audit", "witness", "show", "--state", str(state))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == kept.decode()


def _make_key(home: Path, xdg: Path, state: Path) -> dict[str, Any]:
    """``limit audit witness key`` (it needs no server), as JSON."""
    home.mkdir(exist_ok=True)
    args = ("audit", "witness", "key", "--state", str(state), "--name", WITNESS_NAME, "--json")
    done = run_limit(*args, cwd=home, env=clean_env(XDG_STATE_HOME=str(xdg)))
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    assert document["made"] is True and document["name"] == WITNESS_NAME
    assert (state / "witness.key").stat().st_mode & 0o777 == 0o600
    return document


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.headers["content-type"], body.decode()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet
        return


@contextmanager
def _collector() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """An HTTP endpoint that keeps what is POSTed to it."""
    received: list[tuple[str, str]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cosigned", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_lost_answers_are_retried_a_push_collects_and_another_key_is_refused(
    tmp_path: Path,
) -> None:
    state, xdg = tmp_path / "witness", tmp_path / "xdg"
    server = _start(tmp_path / "home", xdg)
    try:
        _work(server, "one", executions=1)
        public_key = str(
            _ok_json(server, "audit", "prove", "0", "--json")["checkpoint"]["public_key"]
        )
        with lossy_proxy(server.url) as (proxy, through), _collector() as (push_url, received):
            proxy.lose("GET", "/audit/checkpoint", times=2)
            done = _witness(server, state, "--log-key", public_key, "--push", push_url, url=through)
            assert proxy.forwarded("GET", "/audit/checkpoint") == 3
        assert done.returncode == 0, done.stderr
        said = " ".join(done.stderr.split())
        assert "trying again in 0.2 s (1 in a row)" in said
        assert "trying again in 0.4 s (2 in a row)" in said
        assert f"pushed the cosigned checkpoint of size {_lines(done)[0]['tree_size']}" in said
        assert received == [("text/plain; charset=utf-8", _lines(done)[0]["note"])]

        nobody = f"http://127.0.0.1:{free_port()}"
        gone = _witness(server, state, url=nobody)
        assert gone.returncode == 2, gone.stderr
        assert "gave up after 5 attempts" in gone.stderr

        impostor = notes.Signer.generate("limit-graph.local/ledger").verifier_key()
        other_state = tmp_path / "other-witness"
        refused = _witness(server, other_state, "--log-key", impostor)
    finally:
        server.stop()
    assert refused.returncode == 3, refused.stderr
    [verdict] = _lines(refused)
    assert verdict["kind"] == "bad-signature"
    assert "signed by no known key" in verdict["detail"]
    assert not (other_state / "checkpoint.note").exists()
    assert Path(verdict["evidence"]).is_file()


def test_bad_options_are_refused_and_leave_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "witness"
    env = clean_env(XDG_STATE_HOME=str(tmp_path / "xdg"))
    ledger = notes.Signer.generate("limit-graph.local/ledger").verifier_key()
    where = ("--url", f"http://127.0.0.1:{free_port()}", "--api-key", "k", "--once")
    cases = [
        ((), "trusts no log yet: give the log's verifier key"),
        (("--log-key", "not-a-key"), "the log key is not a log's verifier key"),
        (("--log-key", ledger, "--expect-size", "3"), "give both, or neither"),
        (("--log-key", ledger, "--expect-size", "3", "--expect-root", "AAAA"), "a root hash is 32"),
        (("--log-key", ledger, "--name", "two words"), "cannot name a witness key"),
    ]
    for args, says in cases:
        done = run_limit(
            "audit", "witness", "run", "--state", str(state), *where, *args, cwd=tmp_path, env=env
        )
        assert done.returncode == 1, (args, done.stderr)
        assert says in " ".join(done.stderr.split()), (args, done.stderr)
        assert not state.exists(), args
    shown = run_limit("audit", "witness", "show", "--state", str(state), cwd=tmp_path, env=env)
    assert shown.returncode == 1 and "holds no witness" in shown.stderr
