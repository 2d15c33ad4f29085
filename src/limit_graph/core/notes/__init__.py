"""Signed notes, checkpoints and cosignatures, exactly as the C2SP specifications say.

Three formats, written by hand because no well-kept Python library implements them (Go's
``golang.org/x/mod/sumdb/note`` is the reference the tests reproduce):

- a **signed note** (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank
  line, then signature lines ``— <key name> <base64(4-byte key id || signature)>``.  An
  Ed25519 (type 0x01) signature is over the text's UTF-8 bytes, final newline included,
  separating blank line not.  A key is published as a *verifier key*,
  ``<name>+<8 hex key id>+<base64(type byte || 32-byte public key)>``;
- a **checkpoint** (c2sp.org/tlog-checkpoint): a note text of the log's origin, its tree
  size in decimal and its RFC 6962 root hash in base64, then optional extension lines;
- a **cosignature** (c2sp.org/tlog-cosignature, type 0x04, ``cosignature/v1``): a
  witness's note signature on a checkpoint, 8-byte big-endian timestamp || Ed25519
  signature over ``"cosignature/v1\\ntime <timestamp>\\n"`` + the checkpoint text.

Where the specifications leave a choice, this module takes the strict one, so that what
it accepts has a single spelling and anything else fails with a :class:`NoteError` that
says what and where (line numbers count from 1 over the whole note):

- base64 must be canonical (padding present, unused bits zero; RFC 4648 §3.5 lets a
  decoder refuse others), so a signature line cannot be re-spelt;
- at most :data:`MAX_SIGNATURES` (100, as Go's reader) signature lines; the spec asks
  readers to accept at least 16 and to set a limit;
- "Unicode spaces" in key names are the Unicode ``White_Space`` code points (Go's
  ``unicode.IsSpace``), listed here so the answer never depends on Python's tables;
  control characters are U+0000-U+001F but newline, as the spec says (so CR-LF is
  refused, DEL is allowed);
- a verifier key's id is eight lowercase hex digits (the spec's hex) and must be the
  key's own id; a key of another type is refused with that type's name: a type 0x01 key
  is not a cosigner's, use ``CosignatureVerifier(v.name, v.public_key)`` to say so;
- every signature line by a known (name, key id) is verified, repeated lines too (Go
  skips repeats), and one that fails rejects the whole note (the spec's SHOULD); lines
  by unknown keys are kept, in order, so :func:`format_note` gives back the same bytes;
- a tree size fits in 64 bits, a root hash is 32 bytes, a cosignature timestamp is at
  most 2**63 - 1; timestamps in the future are the caller's policy, not refused here;
- a cosigner cosigns only a well-formed checkpoint text.

>>> signer = Signer.from_private_bytes("example.com/log", bytes(32))
>>> body = Checkpoint("example.com/log", 1, bytes(32)).text()
>>> note = sign_note(body, signer)
>>> print(note[: note.rindex(" ")])
example.com/log
1
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
<BLANKLINE>
— example.com/log
>>> parse_checkpoint(open_note(note, [signer.verifier()]).text).size
1
"""

from __future__ import annotations

from limit_graph.core.notes.checkpoint import (
    Checkpoint,
    parse_checkpoint,
)
from limit_graph.core.notes.keys import (
    CosignatureVerifier,
    Cosigner,
    Signer,
    Verifier,
    cosignature_timestamp,
    open_note,
    sign_note,
    verified_signatures,
    verify_cosignatures,
)
from limit_graph.core.notes.text import (
    COSIGNATURE_V1,
    ED25519,
    MAX_SIGNATURES,
    MAX_TIMESTAMP,
    MAX_TREE_SIZE,
    Note,
    NoteError,
    Signature,
    format_note,
    key_id,
    parse_note,
    parse_signature_line,
)

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "Verifier",
    "cosignature_timestamp",
    "format_note",
    "key_id",
    "open_note",
    "parse_checkpoint",
    "parse_note",
    "parse_signature_line",
    "sign_note",
    "verified_signatures",
    "verify_cosignatures",
]
