"""A transparency-log witness with its own key (C2SP ``tlog-cosignature``).

A witness keeps, in a state folder, its own Ed25519 cosigner key, the log key it
trusts and the last checkpoint it cosigned.  Each checkpoint the log shows it must be
signed by that key, carry the log's origin, and be the same tree or a consistent
extension of the one it cosigned before; then it cosigns it.  A log that shows two
histories -- one to this witness, another to someone else, or one now and another
later -- cannot get both cosigned, and the refusal leaves evidence behind.

- :mod:`.state`: the state folder (key, pinned log, last checkpoint, lock);
- :mod:`.cosigning`: :class:`Witness` and its one step, :meth:`Witness.observe`;
- :mod:`.polling`: :func:`run_witness`, the loop over a :class:`LogSource`.

What it raises::

    WitnessError          base
    ├── StateError        the state folder is unusable, or at odds with what it was told
    ├── Refusal           a checkpoint not cosigned (``kind``, ``evidence``)
    ├── LogUnavailable    the log could not be read this time (the loop retries)
    └── GaveUp            ``once``, and every attempt failed

>>> import tempfile, pathlib
>>> from limit_graph.core import notes
>>> log = notes.Signer.from_private_bytes("example.com/log", bytes(32))
>>> note = notes.sign_note(notes.Checkpoint("example.com/log", 1, bytes(32)).text(), log)
>>> trusted = TrustedLog.of(log.verifier_key())
>>> with tempfile.TemporaryDirectory() as tmp:
...     with Witness(pathlib.Path(tmp), log=trusted, clock=lambda: 1e9) as witness:
...         witness.observe(note, lambda first, second: []).status
'trusted-on-first-use'
"""

from limit_graph.orchestration.witness.cosigning import (
    Anchor,
    FetchProof,
    Observation,
    Refusal,
    RefusalKind,
    Witness,
)
from limit_graph.orchestration.witness.polling import (
    Event,
    GaveUp,
    LogCheckpoint,
    LogSource,
    LogUnavailable,
    Push,
    Pushed,
    Retrying,
    Seen,
    backoff_s,
    run_witness,
)
from limit_graph.orchestration.witness.state import (
    CHECKPOINT_FILE,
    DEFAULT_NAME,
    EVIDENCE_DIR,
    KEY_FILE,
    LOG_FILE,
    Cosigned,
    StateError,
    TrustedLog,
    WitnessError,
    load_or_make_key,
    read_checkpoint,
    read_key,
    read_log,
)

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_NAME",
    "EVIDENCE_DIR",
    "KEY_FILE",
    "LOG_FILE",
    "Anchor",
    "Cosigned",
    "Event",
    "FetchProof",
    "GaveUp",
    "LogCheckpoint",
    "LogSource",
    "LogUnavailable",
    "Observation",
    "Push",
    "Pushed",
    "Refusal",
    "RefusalKind",
    "Retrying",
    "Seen",
    "StateError",
    "TrustedLog",
    "Witness",
    "WitnessError",
    "backoff_s",
    "load_or_make_key",
    "read_checkpoint",
    "read_key",
    "read_log",
    "run_witness",
]
