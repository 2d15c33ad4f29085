"""The witness: real checkpoints signed by a real log key over real Merkle trees.

Consistent growth is cosigned, and the cosignature verifies with the witness's public
key; a rollback, a split view, a forked history, another log's key, another origin and
a damaged state are each refused with a message naming what was seen, an evidence file,
and nothing kept changed; the state survives a restart; the loop retries what the
network did not deliver and gives up when told to.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from limit_graph.core import merkle, notes
from limit_graph.orchestration.witness import (
    CHECKPOINT_FILE,
    DEFAULT_NAME,
    EVIDENCE_DIR,
    KEY_FILE,
    LOG_FILE,
    Anchor,
    Event,
    GaveUp,
    LogCheckpoint,
    LogUnavailable,
    Pushed,
    Refusal,
    Retrying,
    Seen,
    StateError,
    TrustedLog,
    Witness,
    run_witness,
)
from tests.fixtures.clock import FakeClock

ORIGIN = "example.com/log"
T0 = 1_700_000_000.0


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Log:
    """A log: a real Merkle tree and a real signing key."""

    def __init__(self, signer: notes.Signer, seed: str = "a", origin: str = ORIGIN) -> None:
        self.signer = signer
        self.tree = merkle.MerkleTree()
        self.seed = seed
        self.origin = origin
        self.proofs: list[tuple[int, int]] = []

    def grow(self, count: int) -> Log:
        for _ in range(count):
            self.tree.append(merkle.leaf_hash(f"{self.seed}-{self.tree.size}".encode()))
        return self

    def note(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        body = notes.Checkpoint(self.origin, size, self.tree.root(size)).text()
        return notes.sign_note(body, self.signer)

    def proof(self, first: int, second: int) -> list[bytes]:
        self.proofs.append((first, second))
        return self.tree.consistency_proof(first, second)

    @property
    def trusted(self) -> TrustedLog:
        return TrustedLog.of(self.signer.verifier_key())


@pytest.fixture
def signer() -> notes.Signer:
    return notes.Signer.generate(ORIGIN)


@pytest.fixture
def log(signer: notes.Signer) -> Log:
    return Log(signer).grow(5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "witness"


def kept_files(folder: Path) -> dict[str, bytes]:
    """What the witness keeps (its evidence and lock aside), byte for byte."""
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if p.is_file() and p.name != "lock" and p.parent.name != EVIDENCE_DIR
    }


def evidence(folder: Path) -> list[dict[str, object]]:
    found = (
        sorted((folder / EVIDENCE_DIR).glob("*.json")) if (folder / EVIDENCE_DIR).exists() else []
    )
    return [json.loads(p.read_text()) for p in found]


def open_witness(state: Path, log: Log, clock: FakeClock, **kwargs: object) -> Witness:
    return Witness(state, log=log.trusted, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_consistent_growth_is_cosigned_and_the_cosignature_verifies(
    state: Path, log: Log, clock: FakeClock
) -> None:
    with open_witness(state, log, clock) as witness:
        first = witness.observe(log.note(), log.proof)
        assert (first.status, first.checkpoint.size, first.previous_size) == (
            "trusted-on-first-use",
            5,
            None,
        )
        assert log.proofs == []  # nothing earlier to prove against
        clock.advance(30)
        log.grow(6)
        grown = witness.observe(log.note(), log.proof)
        public = notes.CosignatureVerifier.from_verifier_key(witness.verifier_key)
        assert witness.cosigner.name == DEFAULT_NAME

    assert (grown.status, grown.checkpoint.size, grown.previous_size) == ("consistent", 11, 5)
    assert log.proofs == [(5, 11)]
    kept = notes.parse_note(grown.note)
    assert notes.verify_cosignatures(kept, [public]) == {public: int(T0) + 30}
    assert (
        notes.open_note(grown.note, [log.signer.verifier()]).text
        == log.note().split("\n\n")[0] + "\n"
    )
    assert [s.name for s in kept.signatures] == [ORIGIN, DEFAULT_NAME]
    assert (state / CHECKPOINT_FILE).read_text() == grown.note
    assert evidence(state) == []
    mode = (state / KEY_FILE).stat().st_mode & 0o777
    assert mode == 0o600


def test_an_unchanged_checkpoint_keeps_its_cosignature(
    state: Path, log: Log, clock: FakeClock
) -> None:
    with open_witness(state, log, clock) as witness:
        made = witness.observe(log.note(), log.proof)
        before = kept_files(state)
        clock.advance(60)
        again = witness.observe(log.note(), log.proof)
    assert (again.status, again.cosigned, again.cosigned_at) == ("unchanged", False, int(T0))
    assert again.note == made.note
    assert kept_files(state) == before


def test_a_rollback_is_refused_with_evidence_and_nothing_kept(
    state: Path, log: Log, clock: FakeClock
) -> None:
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
        before = kept_files(state)
        with pytest.raises(Refusal) as refused:
            witness.observe(log.note(3), log.proof)
        assert witness.last is not None and witness.last.checkpoint.size == 5
    assert refused.value.kind == "rollback"
    message = str(refused.value)
    assert message.startswith("rollback: the log signed size 3 with root ")
    assert b64(log.tree.root(3)) in message and b64(log.tree.root(5)) in message
    assert kept_files(state) == before
    [shown] = evidence(state)
    assert (
        refused.value.evidence is not None and refused.value.evidence.parent == state / EVIDENCE_DIR
    )
    assert shown["kind"] == "rollback" and shown["signed_by_log"] is True
    assert shown["received"] == {
        "note": log.note(3),
        "tree_size": 3,
        "root_hash": b64(log.tree.root(3)),
    }
    last = shown["last"]
    assert isinstance(last, dict) and last["note"] == before[CHECKPOINT_FILE].decode()
    assert (last["tree_size"], last["root_hash"]) == (5, b64(log.tree.root(5)))


def test_a_split_view_same_size_other_root_is_refused(
    state: Path, log: Log, signer: notes.Signer, clock: FakeClock
) -> None:
    other = Log(signer, seed="b").grow(5)  # the same key shows another history
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
        before = kept_files(state)
        with pytest.raises(Refusal) as refused:
            witness.observe(other.note(), other.proof)
    assert refused.value.kind == "split-view"
    assert str(refused.value).startswith(
        f"split view: the log signed size 5 with root {b64(other.tree.root())}; this witness "
        f"cosigned size 5 with root {b64(log.tree.root())}"
    )
    assert kept_files(state) == before
    [shown] = evidence(state)
    assert shown["kind"] == "split-view" and shown["proof"] is None
    assert isinstance(shown["received"], dict) and shown["received"]["note"] == other.note()


def test_a_forked_history_fails_its_consistency_proof(
    state: Path, log: Log, signer: notes.Signer, clock: FakeClock
) -> None:
    fork = Log(signer, seed="a").grow(3)  # shares the first 3 entries, not the next 2
    fork.seed = "fork"
    fork.grow(7)
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
        before = kept_files(state)
        with pytest.raises(Refusal) as refused:
            witness.observe(fork.note(), fork.proof)
    assert refused.value.kind == "inconsistent"
    message = str(refused.value)
    assert message.startswith(
        f"forked history: the log signed size 10 with root {b64(fork.tree.root())}"
    )
    assert "consistency proof from 5 to 10 does not hold" in message
    assert fork.proofs == [(5, 10)]
    assert kept_files(state) == before
    [shown] = evidence(state)
    assert shown["proof"] == {
        "first": 5,
        "second": 10,
        "hashes": [b64(h) for h in fork.tree.consistency_proof(5, 10)],
    }


def test_a_proof_that_is_cut_short_is_refused(state: Path, log: Log, clock: FakeClock) -> None:
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
        log.grow(4)
        with pytest.raises(Refusal) as refused:
            witness.observe(log.note(), lambda first, second: log.proof(first, second)[:-1])
        assert refused.value.kind == "inconsistent"
        # The same checkpoint with its whole proof is then cosigned: nothing was kept.
        assert witness.observe(log.note(), log.proof).status == "consistent"


def test_another_logs_key_is_refused(state: Path, log: Log, clock: FakeClock) -> None:
    impostor = Log(notes.Signer.generate(ORIGIN)).grow(8)  # same name, another key
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
        before = kept_files(state)
        with pytest.raises(Refusal) as refused:
            witness.observe(impostor.note(), impostor.proof)
    assert refused.value.kind == "bad-signature"
    assert str(refused.value).startswith("bad signature: the note is signed by no known key")
    assert log.signer.verifier_key() in str(refused.value)
    assert impostor.proofs == []
    assert kept_files(state) == before
    [shown] = evidence(state)
    assert shown["signed_by_log"] is False


def test_a_signature_by_the_logs_key_that_fails_is_refused(
    state: Path, log: Log, clock: FakeClock
) -> None:
    note = log.note()
    body, _, signature = note.rpartition(" ")
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    with open_witness(state, log, clock) as witness, pytest.raises(Refusal) as refused:
        witness.observe(f"{body} {b64(bytes(raw))}\n", log.proof)
    assert refused.value.kind == "bad-signature"
    assert "does not verify" in str(refused.value)
    assert not (state / CHECKPOINT_FILE).exists()


def test_another_origin_is_refused(
    state: Path, log: Log, signer: notes.Signer, clock: FakeClock
) -> None:
    elsewhere = Log(signer, origin="example.com/other-log").grow(5)
    with open_witness(state, log, clock) as witness, pytest.raises(Refusal) as refused:
        witness.observe(elsewhere.note(), elsewhere.proof)
    assert refused.value.kind == "wrong-origin"
    assert str(refused.value).startswith(
        "wrong origin: the checkpoint is of 'example.com/other-log', this witness checks "
        "'example.com/log'"
    )
    assert not (state / CHECKPOINT_FILE).exists()


def test_garbage_is_refused_as_malformed(state: Path, log: Log, clock: FakeClock) -> None:
    with open_witness(state, log, clock) as witness, pytest.raises(Refusal) as refused:
        witness.observe("<html>502 Bad Gateway</html>\n", log.proof)
    assert refused.value.kind == "malformed"
    assert str(refused.value).startswith("not a signed note: the note has no blank line")


def test_the_state_survives_a_restart(state: Path, log: Log, clock: FakeClock) -> None:
    with open_witness(state, log, clock, name="witness.example.org/w1") as witness:
        first = witness.observe(log.note(), log.proof)
        key = witness.verifier_key
    log.grow(3)
    with Witness(state, clock=clock) as again:  # no log key: the pinned one
        assert again.verifier_key == key and not again.made_key
        assert again.last is not None and again.last.note == first.note
        grown = again.observe(log.note(), log.proof)
    assert (grown.status, grown.previous_size) == ("consistent", 5)
    assert log.proofs == [(5, 8)]
    assert json.loads((state / LOG_FILE).read_text()) == {
        "origin": ORIGIN,
        "verifier_key": log.signer.verifier_key(),
    }


def test_one_state_serves_one_witness_at_a_time(state: Path, log: Log, clock: FakeClock) -> None:
    with (
        open_witness(state, log, clock),
        pytest.raises(StateError, match="another witness is running on"),
    ):
        open_witness(state, log, clock)
    with open_witness(state, log, clock):
        pass  # the lock went with the first


def test_a_different_log_key_later_is_refused(state: Path, log: Log, clock: FakeClock) -> None:
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
    before = kept_files(state)
    other = TrustedLog.of(notes.Signer.generate("example.com/log").verifier_key())
    with pytest.raises(StateError, match="a witness does not change the log it checks"):
        Witness(state, log=other, clock=clock)
    assert kept_files(state) == before


def test_the_first_run_needs_a_log_key_and_makes_nothing_without_one(state: Path) -> None:
    with pytest.raises(StateError, match="trusts no log yet: give the log's verifier key"):
        Witness(state)
    assert not state.exists()
    with pytest.raises(StateError, match="not a log's verifier key"):
        TrustedLog.of("example.com/log+00000000+AAAA")


def test_a_witness_keeps_its_name(state: Path, log: Log, clock: FakeClock) -> None:
    with open_witness(state, log, clock, name="witness.example.org/w1") as witness:
        assert witness.cosigner.name == "witness.example.org/w1"
    with pytest.raises(StateError, match="is named 'witness.example.org/w1', not 'w2'"):
        open_witness(state, log, clock, name="w2")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda text: text.replace("\n5\n", "\n6\n"), "does not verify"),
        (
            lambda text: "\n".join(line for line in text.split("\n") if ORIGIN + " " not in line),
            "signed by no known key",
        ),
        (lambda text: text[:20], "is damaged: the note"),
    ],
    ids=["size-changed", "log-signature-cut", "truncated"],
)
def test_a_damaged_checkpoint_file_stops_the_witness(
    state: Path, log: Log, clock: FakeClock, damage: object, says: str
) -> None:
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
    path = state / CHECKPOINT_FILE
    path.write_text(damage(path.read_text()))  # type: ignore[operator]
    before = kept_files(state)
    with pytest.raises(StateError) as stopped:
        open_witness(state, log, clock)
    assert str(stopped.value).startswith(f"{path} is damaged")
    assert says in str(stopped.value)
    assert kept_files(state) == before


def test_a_checkpoint_without_its_own_cosignature_is_damaged(
    state: Path, log: Log, clock: FakeClock
) -> None:
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
    (state / CHECKPOINT_FILE).write_text(log.note())  # the log's note alone
    with pytest.raises(StateError, match="carries no cosignature by"):
        open_witness(state, log, clock)


def test_a_key_file_others_can_read_or_that_is_damaged_is_refused(
    state: Path, log: Log, clock: FakeClock
) -> None:
    with open_witness(state, log, clock):
        pass
    key = state / KEY_FILE
    os.chmod(key, 0o644)
    with pytest.raises(StateError, match=r"may be read by others \(mode 0644\)"):
        open_witness(state, log, clock)
    os.chmod(key, 0o600)
    key.write_text("PRIVATE+KEY+w+00000000+AQ==\n")
    with pytest.raises(StateError, match="is damaged: not a cosignature/v1"):
        open_witness(state, log, clock)


def test_a_pinned_checkpoint_replaces_trust_on_first_use(
    state: Path, log: Log, signer: notes.Signer, clock: FakeClock
) -> None:
    pin = Anchor(3, log.tree.root(3))
    with open_witness(state, log, clock, expect=pin) as witness:
        seen = witness.observe(log.note(), log.proof)
    assert (seen.status, seen.previous_size) == ("checked-against-pin", 3)
    assert log.proofs == [(3, 5)]

    other_state = state.parent / "other"
    other = Log(signer, seed="b").grow(5)
    with (
        open_witness(other_state, log, clock, expect=pin) as witness,
        pytest.raises(Refusal) as refused,
    ):
        witness.observe(other.note(), other.proof)
    assert refused.value.kind == "inconsistent"
    assert "this witness was told to expect size 3" in str(refused.value)
    [shown] = evidence(other_state)
    assert shown["last"] == {
        "tree_size": 3,
        "root_hash": b64(log.tree.root(3)),
        "note": None,
        "pinned": True,
    }
    assert not (other_state / CHECKPOINT_FILE).exists()


def test_a_cosignature_time_never_goes_back(state: Path, log: Log, clock: FakeClock) -> None:
    with open_witness(state, log, clock) as witness:
        witness.observe(log.note(), log.proof)
        clock.advance(-3600)  # the clock was stepped back
        log.grow(1)
        assert witness.observe(log.note(), log.proof).cosigned_at == int(T0)


def no_wait(seconds: float) -> None:
    assert seconds > 0


class MemoryLog:
    """A :class:`LogSource` over a :class:`Log`, whose next reads can fail."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.failures = 0

    def checkpoint(self) -> LogCheckpoint:
        if self.failures:
            self.failures -= 1
            raise LogUnavailable("nothing answered")
        return LogCheckpoint(self.log.note())

    def consistency(self, first: int, second: int) -> Sequence[bytes]:
        return self.log.proof(first, second)


def test_the_loop_retries_with_backoff_then_cosigns(
    state: Path, log: Log, clock: FakeClock
) -> None:
    source, events, waits, pushed = MemoryLog(log), list[Event](), list[float](), list[str]()
    source.failures = 3
    with open_witness(state, log, clock) as witness:
        seen = run_witness(
            witness,
            source,
            events.append,
            interval_s=2,
            once=True,
            push=pushed.append,
            sleep=waits.append,
        )
    assert waits == [2, 4, 8]
    assert [e.failures for e in events if isinstance(e, Retrying)] == [1, 2, 3]
    assert isinstance(events[3], Seen) and events[3].observation == seen
    assert events[4] == Pushed(5) and pushed == [seen.note]


def test_the_loop_gives_up_when_told_and_pushes_again_what_failed(
    state: Path, log: Log, clock: FakeClock
) -> None:
    source = MemoryLog(log)
    source.failures = 5
    with open_witness(state, log, clock) as witness:
        with pytest.raises(GaveUp, match="gave up after 3 attempts: nothing answered"):
            run_witness(witness, source, list[Event]().append, once=True, attempts=3, sleep=no_wait)
        assert not (state / CHECKPOINT_FILE).exists()

        tries: list[str] = []

        def flaky_push(note: str) -> None:
            tries.append(note)
            if len(tries) == 1:
                raise LogUnavailable("the collector is down")

        source.failures = 0
        seen = run_witness(
            witness, source, list[Event]().append, once=True, push=flaky_push, sleep=no_wait
        )
    assert tries == [seen.note, seen.note]  # cosigned once, pushed on the next round
    assert seen.status == "unchanged"
