"""Signed notes, checkpoints and cosignatures: the published vectors reproduced byte for
byte, round trips of generated notes and checkpoints, and every malformed or altered
input refused with an error that says what is wrong."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from limit_graph.core.notes import (
    COSIGNATURE_V1,
    ED25519,
    MAX_SIGNATURES,
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    Note,
    NoteError,
    Signature,
    Signer,
    Verifier,
    cosignature_timestamp,
    format_note,
    key_id,
    open_note,
    parse_checkpoint,
    parse_note,
    parse_signature_line,
    sign_note,
    verified_signatures,
    verify_cosignatures,
)

# golang.org/x/mod, sumdb/note/note_test.go (TestNewVerifier, TestSign, TestOpen): the
# PeterNeumann and EnochRoot keys, the text, and the signature lines Go's note.Sign writes.
# The signer key "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK..." is base64(0x01 || seed).
PETER_SKEY_DATA = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
    "nWLox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG

# golang.org/x/mod, sumdb/client_test.go: the test log's keys, and the two signed tree
# heads (checkpoints) quoted in TestClientSecurity's comment; the comment's first origin
# line has a stray "!", the test's own `wants` and the signature say "go.sum database tree".
SUMDB_SKEY_DATA = "AXu6+oaVaOYuQOFrf1V59JK1owcFlJcHwwXHDfDGxSPk"
SUMDB_VKEY = "localhost.localdev/sumdb+00000c67+AcTrnkbUA+TU4heY3hkjiSES/DSQniBqIeQ/YppAUtK6"
SUMDB_NOTES = [
    (
        "go.sum database tree\n5\nnWzN20+pwMt62p7jbv1/NlN95ePTlHijabv5zO/s36w=\n\n"
        "— localhost.localdev/sumdb AAAMZ5/2FVAdMH58kmnz/0h299pwyskEbzDzoa2/YaPdhvLya4YWDFQ"
        "Qxu2TQb5GpwAH4NdWnTwuhILafisyf3CNbgg=\n",
        5,
    ),
    (
        "go.sum database tree\n6\nwc4SkQt52o5W2nQ8To2ARs+mWuUJjss+sdleoiqxMmM=\n\n"
        "— localhost.localdev/sumdb AAAMZ6oRNswlEZ6ZZhxrCvgl1MBy+nusq4JU+TG6Fe2NihWLqOzb+y2c"
        "2kzRLoCr4tvw9o36ucQEnhc20e4nA4Qc/wc=\n",
        6,
    ),
]

# c2sp.org/signed-note, "Verifier keys", "Example"; and the note at the top of the spec.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX"
    "ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
QUASIMODO_TEXT = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
)
QUASIMODO_NOTE = (
    QUASIMODO_TEXT + "\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnG"
    "ITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
# c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature: the example checkpoint, its log
# signature and a witness's cosignature made at 1679315147 (the spec's example message).
SOFA_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_NOTE = (
    SOFA_TEXT + "\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRD"
    "eOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
# github.com/transparency-dev/formats, note/note_cosigv1_test.go (TestCoSigV1NewVerifier,
# TestCoSigV1Timestamp): a native type 0x04 vkey, a type 0x01 one, a cosignature's time.
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
TEST_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
TD_COSIG = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOwor"
    "DcFiEBYJXORmnFBOBA=="
)


def _seed(skey_data: str) -> bytes:
    raw = base64.b64decode(skey_data)
    assert raw[0] == ED25519
    return raw[1:]


PETER = Signer.from_private_bytes("PeterNeumann", _seed(PETER_SKEY_DATA))
PETER_V = Verifier.from_verifier_key(PETER_VKEY)
ENOCH_V = Verifier.from_verifier_key(ENOCH_VKEY)
ROOT = hashlib.sha256(b"root").digest()


def _error(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(NoteError) as caught:
        call(*args)
    return str(caught.value)


# --- the published vectors ------------------------------------------------------------


def test_the_peter_neumann_key_gives_go_s_verifier_key_and_signature() -> None:
    assert PETER.verifier_key() == PETER_VKEY
    assert (
        PETER.key_id.hex()
        == "c74f20a3"
        == key_id("PeterNeumann", ED25519, PETER.public_key()).hex()
    )
    assert PETER.sign(TEXT).line() + "\n" == PETER_SIG
    assert sign_note(TEXT, PETER) == PETER_NOTE
    assert PETER.verifier() == PETER_V
    assert PETER_V.verifier_key() == PETER_VKEY


def test_the_go_notes_open_with_the_keys_that_signed_them() -> None:
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    note = open_note(both, [PETER_V])
    assert note.text == TEXT
    assert [sig.key for sig in note.signatures] == ["PeterNeumann+c74f20a3", "EnochRoot+af0cfe78"]
    assert verified_signatures(note, [PETER_V]) == note.signatures[:1], "Enoch's is kept, untrusted"
    assert verified_signatures(note, [PETER_V, ENOCH_V]) == note.signatures
    assert format_note(note) == both
    assert "no known key" in _error(open_note, both, [])


def test_the_sumdb_test_log_s_checkpoints_reproduce_and_open() -> None:
    signer = Signer.from_private_bytes("localhost.localdev/sumdb", _seed(SUMDB_SKEY_DATA))
    assert signer.verifier_key() == SUMDB_VKEY
    for note_text, size in SUMDB_NOTES:
        note = open_note(note_text.encode(), [Verifier.from_verifier_key(SUMDB_VKEY)])
        checkpoint = parse_checkpoint(note.text)
        assert (checkpoint.origin, checkpoint.size) == ("go.sum database tree", size)
        assert checkpoint.text() == note.text
        assert sign_note(checkpoint.text(), signer) == note_text


def test_the_c2sp_signed_note_examples() -> None:
    assert open_note(C2SP_NOTE, [Verifier.from_verifier_key(C2SP_VKEY)]).text.startswith("This")
    note = parse_note(QUASIMODO_NOTE)
    assert note.text == QUASIMODO_TEXT, "the text runs to the last blank line"
    assert note.signatures[0].name == "quasimodo.example/salvatore"
    assert format_note(note) == QUASIMODO_NOTE


def test_the_c2sp_checkpoint_and_its_witness_cosignature() -> None:
    note = parse_note(SOFA_NOTE)
    checkpoint = parse_checkpoint(note.text)
    assert checkpoint == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    log, witness = note.signatures
    assert len(log.signature) == 64 and len(witness.signature) == 72
    assert cosignature_timestamp(witness) == 1679315147
    assert cosignature_timestamp(Signature("x", b"\0" * 4, base64.b64decode(TD_COSIG)[4:])) == (
        1727964367
    )
    assert "cosignature/v1 is 72" in _error(cosignature_timestamp, log)


def test_transparency_dev_vkeys_are_read_by_their_own_kind_only() -> None:
    remora = CosignatureVerifier.from_verifier_key(REMORA_VKEY)
    assert remora.key_id.hex() == "da77ade7" and remora.verifier_key() == REMORA_VKEY
    assert "0x04 (Ed25519 cosignature/v1)" in _error(Verifier.from_verifier_key, REMORA_VKEY)
    plain = Verifier.from_verifier_key(TEST_VKEY)
    assert "0x01 (Ed25519 note signatures)" in _error(
        CosignatureVerifier.from_verifier_key, TEST_VKEY
    )
    converted = CosignatureVerifier(plain.name, plain.public_key)
    assert converted.key_id == key_id("TEST", COSIGNATURE_V1, plain.public_key) != plain.key_id


@pytest.mark.parametrize("vkey", [PETER_VKEY, REMORA_VKEY])
def test_every_mangled_verifier_key_is_refused(vkey: str) -> None:
    # As Go's TestNewVerifier: every proper substring, and every character moved up by one.
    kind = Verifier if vkey is PETER_VKEY else CosignatureVerifier
    mangled = {vkey[i:j] for i, j in itertools.combinations(range(len(vkey) + 1), 2)}
    mangled |= {vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))}
    mangled.discard(vkey)
    accepted = []
    for candidate in mangled:
        try:
            kind.from_verifier_key(candidate)
        except NoteError:
            continue
        accepted.append(candidate)
    assert accepted == []


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type is 0x65"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==", "is 33 bytes"),
        ("PeterNeumann+c74f20a3", "<name>+<key id>+<base64 key>"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "holds a space"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "name is empty"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not base64"),
        ("PeterNeumann+c74f20a3+", "type is empty"),
    ],
)
def test_a_bad_verifier_key_says_what_is_wrong(vkey: str, message: str) -> None:
    assert message in _error(Verifier.from_verifier_key, vkey)


# --- malformed notes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (TEXT + "\n" + PETER_SIG[:-1], "does not end in a newline"),
        (TEXT + PETER_SIG, "no blank line"),
        (TEXT, "no blank line"),
        (TEXT + "\n", "no signature lines"),
        (TEXT + "\n" + PETER_SIG.replace("—", "-"), "line 4: '- PeterNeumann"),
        (TEXT + "\n" + PETER_SIG.replace("— ", "—"), "em dash (U+2014) and a space"),
        (TEXT + "\n" + "— PeterNeumann\n", "'— <key name> <base64>'"),
        (TEXT + "\n" + PETER_SIG.replace("x08go/", "x08go!"), "is not base64"),
        (TEXT + "\n" + PETER_SIG.replace("nAM=", "nAN="), "not canonical base64"),
        (TEXT + "\n" + PETER_SIG.replace("nAM=", "nAM"), "is not base64"),
        (TEXT + "\n" + "— PeterNeumann AAAA\n", "3 bytes: a 4-byte key id and more"),
        (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "is not base64"),
        (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"), "plus sign"),
        (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter\u3000Neumann"), "U+3000"),
        (TEXT + "\n" + PETER_SIG.replace("— PeterNeumann", "— "), "key name is empty"),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "line 5: 'Unexpected line.'"),
        ("\x01" + PETER_NOTE, "control character U+0001 on line 1"),
        (PETER_NOTE.replace("\n", "\r\n"), "control character U+000D"),
        ("\ud800" + PETER_NOTE, "lone surrogate"),
        (b"\xff" + PETER_NOTE.encode(), "not valid UTF-8 (byte 0)"),
        (TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), "101 signature lines: at most 100"),
    ],
)
def test_a_malformed_note_is_refused_with_what_is_wrong(note: str | bytes, message: str) -> None:
    assert message in _error(parse_note, note)
    assert message in _error(open_note, note, [PETER_V])


def test_sixteen_and_a_hundred_signatures_are_read() -> None:
    for count in (16, MAX_SIGNATURES):
        assert len(open_note(TEXT + "\n" + PETER_SIG * count, [PETER_V]).signatures) == count


def test_a_note_text_without_its_final_newline_is_not_signed() -> None:
    assert "does not end in a newline" in _error(sign_note, TEXT[:-1], PETER)
    assert "does not end in a newline" in _error(Note, TEXT[:-1], (PETER.sign(TEXT),))
    assert "at least one signer" in _error(sign_note, TEXT)
    assert "1 to 100 signatures, not 0" in _error(Note, TEXT, ())


# --- notes that do not verify ---------------------------------------------------------


def _line(name: str, raw: bytes) -> str:
    return f"— {name} {base64.b64encode(raw).decode()}\n"


def test_a_signature_of_the_wrong_length_by_a_known_key_is_refused() -> None:
    sig = base64.b64decode(PETER_SIG.split()[-1])
    note = TEXT + "\n" + _line("PeterNeumann", sig[:-1])
    assert "is 63 bytes: an Ed25519 signature is 64" in _error(open_note, note, [PETER_V])
    # Go's TestOpen: four characters pushed into the base64.
    longer = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    assert "is 67 bytes" in _error(open_note, longer, [PETER_V])


def test_a_key_id_that_is_not_the_key_s_makes_the_signature_unknown() -> None:
    sig = base64.b64decode(PETER_SIG.split()[-1])
    note = TEXT + "\n" + _line("PeterNeumann", bytes.fromhex("c74f20a4") + sig[4:])
    assert "signed by no known key (it is signed by PeterNeumann+c74f20a4)" in _error(
        open_note, note, [PETER_V]
    )
    assert parse_note(note).signatures[0].key_id.hex() == "c74f20a4"


def test_a_note_signed_only_by_unknown_keys_is_not_trusted() -> None:
    message = _error(open_note, TEXT + "\n" + ENOCH_SIG, [PETER_V])
    assert message == "the note is signed by no known key (it is signed by EnochRoot+af0cfe78)"


def test_a_flipped_bit_in_the_text_or_the_signature_is_refused() -> None:
    flipped_text = TEXT.replace("answer", "anSwer") + "\n" + PETER_SIG
    assert "by PeterNeumann+c74f20a3 does not verify" in _error(open_note, flipped_text, [PETER_V])
    sig = bytearray(base64.b64decode(PETER_SIG.split()[-1]))
    for bit in range(32, len(sig) * 8):  # past the key id: the signature itself
        sig[bit // 8] ^= 1 << bit % 8
        note = TEXT + "\n" + _line("PeterNeumann", bytes(sig))
        assert "does not verify" in _error(open_note, note, [PETER_V])
        sig[bit // 8] ^= 1 << bit % 8


def test_no_single_bit_flip_anywhere_in_a_note_opens() -> None:
    data = bytearray(PETER_NOTE.encode())
    opened = []
    for bit in range(len(data) * 8):
        data[bit // 8] ^= 1 << bit % 8
        try:
            open_note(bytes(data), [PETER_V])
            opened.append(bit)
        except NoteError:
            pass
        data[bit // 8] ^= 1 << bit % 8
    assert opened == []


def test_one_bad_signature_by_a_known_key_rejects_the_note_even_beside_a_good_one() -> None:
    # Go's Open skips a known key's repeated lines unverified; the spec says to verify
    # every signature by a known key, and to reject the note when one fails.
    sig = bytearray(base64.b64decode(PETER_SIG.split()[-1]))
    sig[-1] ^= 1
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG + _line("PeterNeumann", bytes(sig))
    assert "does not verify" in _error(open_note, note, [PETER_V])


def test_verifiers_sharing_a_name_and_key_id_but_not_a_key_are_refused() -> None:
    # The key id is 32 bits: a birthday search finds two keys that share one.
    seen: dict[bytes, bytes] = {}
    for counter in itertools.count():
        public = hashlib.sha256(counter.to_bytes(8, "big")).digest()
        kid = key_id("n", ED25519, public)
        if kid in seen:
            break
        seen[kid] = public
    first, second = Verifier("n", seen[kid]), Verifier("n", public)
    assert first.key_id == second.key_id and first != second
    assert "share the name and key id n+" in _error(open_note, PETER_NOTE, [first, second])
    assert open_note(PETER_NOTE, [PETER_V, PETER_V]).text == TEXT, "the same key twice is fine"


def test_verify_says_false_and_check_says_why() -> None:
    other = Signer.generate("PeterNeumann")
    peter_sig = PETER.sign(TEXT)
    assert PETER_V.verify(TEXT, peter_sig) and not other.verifier().verify(TEXT, peter_sig)
    assert not PETER_V.verify(TEXT + "x\n", peter_sig)
    assert "is by PeterNeumann+c74f20a3, not PeterNeumann+" in _error(
        other.verifier().check, TEXT, peter_sig
    )
    with pytest.raises(TypeError, match="expected Verifier"):
        open_note(PETER_NOTE, [CosignatureVerifier.from_verifier_key(REMORA_VKEY)])  # type: ignore[list-item]


# --- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\u00a0b", "a\u2028b", "a\u3000b", "a\tb", "a\nb"]
)
def test_a_key_name_with_a_space_a_plus_or_nothing_is_refused(name: str) -> None:
    assert _error(Signer.generate, name)
    assert _error(Cosigner.generate, name)


def test_a_key_round_trips_through_its_seed_and_hides_it() -> None:
    signer = Signer.generate("example.com/log")
    again = Signer.from_private_bytes("example.com/log", signer.private_bytes())
    assert again.verifier_key() == signer.verifier_key()
    assert signer.private_bytes().hex() not in repr(signer)
    assert "32-byte seed" in _error(Signer.from_private_bytes, "x", bytes(31))
    assert Verifier.from_verifier_key(signer.verifier_key()) == signer.verifier()


# --- checkpoints ----------------------------------------------------------------------


def _checkpoint(size: str = "7", root: str | None = None, rest: str = "") -> str:
    root = base64.b64encode(ROOT).decode() if root is None else root
    return f"example.com/log\n{size}\n{root}\n{rest}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_checkpoint("007"), "line 2: the tree size '007' has a leading zero"),
        (_checkpoint("00"), "has a leading zero"),
        (_checkpoint("-1"), "the tree size '-1' is negative"),
        (_checkpoint("+7"), "is not a decimal number"),
        (_checkpoint(" 7"), "is not a decimal number"),
        (_checkpoint("7_0"), "is not a decimal number"),
        (_checkpoint("\u0667"), "is not a decimal number"),  # ARABIC-INDIC DIGIT SEVEN
        (_checkpoint(""), "is not a decimal number"),
        (_checkpoint(str(2**64)), "does not fit in 64 bits"),
        (_checkpoint(root=base64.b64encode(ROOT[:31]).decode()), "root hash is 31 bytes"),
        (_checkpoint(root=base64.b64encode(ROOT + b"!").decode()), "root hash is 33 bytes"),
        (_checkpoint(root=base64.b64encode(ROOT).decode()[:-1]), "line 3: the root hash is not"),
        (_checkpoint().replace("example.com/log", ""), "line 1: the origin is empty"),
        (_checkpoint(rest="ext\n\n"), "line 5 is empty"),
        (_checkpoint()[:-1], "does not end in a newline"),
        ("example.com/log\n7\n", "at least 3 lines"),
        (_checkpoint(rest="a\x00b\n"), "control character U+0000 on line 4"),
    ],
)
def test_a_malformed_checkpoint_is_refused(text: str, message: str) -> None:
    assert message in _error(parse_checkpoint, text)


def test_a_checkpoint_is_read_as_written() -> None:
    assert parse_checkpoint(_checkpoint("0")).size == 0, "an empty tree"
    assert parse_checkpoint(_checkpoint(str(2**64 - 1))).size == 2**64 - 1
    text = _checkpoint(rest="ext one\nanother\n")
    assert parse_checkpoint(text).extensions == ("ext one", "another")
    assert parse_checkpoint(text).text() == text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("", 1, ROOT), "origin is empty"),
        (("o", -1, ROOT), "tree size is from 0 to 2**64 - 1, not -1"),
        (("o", 2**64, ROOT), "tree size is from 0"),
        (("o", True, ROOT), "tree size is an int"),
        (("o", 1, ROOT[:31]), "root hash is 32 bytes"),
        (("o", 1, ROOT, ("",)), "extension line is empty"),
        (("o", 1, ROOT, ("a\nb",)), "extension line holds a newline"),
        (("o\n", 1, ROOT), "origin holds a newline"),
    ],
)
def test_a_checkpoint_that_cannot_be_written_is_not_made(
    fields: tuple[object, ...], message: str
) -> None:
    assert message in _error(Checkpoint, *fields)


origins = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
checkpoints = st.builds(
    Checkpoint,
    origin=origins,
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(origins, max_size=4).map(tuple),
)


@given(checkpoints)
def test_checkpoints_round_trip_through_signed_notes(checkpoint: Checkpoint) -> None:
    note = sign_note(checkpoint.text(), PETER)
    assert parse_checkpoint(open_note(note, [PETER_V]).text) == checkpoint


names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="+"),
    min_size=1,
    max_size=20,
)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n")).map(
    lambda text: text + "\n"
)
signatures = st.builds(
    Signature, names, st.binary(min_size=4, max_size=4), st.binary(min_size=1, max_size=80)
)


@given(texts, st.lists(signatures, min_size=1, max_size=5))
def test_any_note_formats_and_parses_back_to_itself(text: str, sigs: list[Signature]) -> None:
    note = Note(text, tuple(sigs))
    written = format_note(note)
    assert parse_note(written) == note and parse_note(written.encode()) == note
    assert parse_signature_line(sigs[0].line()) == sigs[0]


@given(texts)
def test_any_text_signed_opens_with_its_key_only(text: str) -> None:
    note = sign_note(text, PETER)
    assert open_note(note, [PETER_V]).text == text
    assert "no known key" in _error(open_note, note, [ENOCH_V])


# --- cosignatures ---------------------------------------------------------------------

WITNESS = Cosigner.from_private_bytes("witness.example.com/w1", bytes(range(32)))


def test_a_cosigner_key_has_its_own_type_byte_and_key_id() -> None:
    vkey = WITNESS.verifier_key()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == COSIGNATURE_V1
    assert WITNESS.key_id == key_id(WITNESS.name, 0x04, WITNESS.public_key())
    plain = Signer.from_private_bytes(WITNESS.name, WITNESS.private_bytes())
    assert plain.key_id != WITNESS.key_id, "one key, two types, two key ids"
    assert CosignatureVerifier.from_verifier_key(vkey) == WITNESS.verifier()


def test_a_cosignature_signs_the_spec_s_message_and_returns_its_time() -> None:
    text = Checkpoint("example.com/log", 7, ROOT, ("ext",)).text()
    cosig = WITNESS.cosign(text, 1679315147)
    assert cosig.signature[:8] == (1679315147).to_bytes(8, "big") and len(cosig.signature) == 72
    message = b"cosignature/v1\ntime 1679315147\n" + text.encode()
    Ed25519PublicKey.from_public_bytes(WITNESS.public_key()).verify(cosig.signature[8:], message)
    assert WITNESS.verifier().verify(text, cosig) == 1679315147
    assert WITNESS.verifier().check(text, WITNESS.cosign(text, 0)) == 0


def test_a_cosignature_holds_for_its_checkpoint_only() -> None:
    checkpoint = Checkpoint("example.com/log", 7, ROOT, ("ext",))
    cosig = WITNESS.cosign(checkpoint.text(), 1700000000)
    verifier = WITNESS.verifier()
    changed = [
        Checkpoint("example.com/log", 8, ROOT, ("ext",)),
        Checkpoint("example.com/log", 7, bytes(32), ("ext",)),
        Checkpoint("example.com/other", 7, ROOT, ("ext",)),
        Checkpoint("example.com/log", 7, ROOT, ("ex",)),
        Checkpoint("example.com/log", 7, ROOT),
    ]
    for other in changed:
        assert verifier.verify(other.text(), cosig) is None
        assert "does not verify" in _error(verifier.check, other.text(), cosig)
    retimed = Signature(
        cosig.name, cosig.key_id, (1700000001).to_bytes(8, "big") + cosig.signature[8:]
    )
    assert verifier.verify(checkpoint.text(), retimed) is None
    not_a_checkpoint = "example.com/log\n07\n" + base64.b64encode(ROOT).decode() + "\n"
    assert "leading zero" in _error(verifier.check, not_a_checkpoint, cosig)
    assert Cosigner.generate(WITNESS.name).verifier().verify(checkpoint.text(), cosig) is None


def test_a_cosigner_refuses_what_is_not_a_checkpoint_or_a_time() -> None:
    text = Checkpoint("example.com/log", 7, ROOT).text()
    assert "at least 3 lines" in _error(WITNESS.cosign, TEXT, 1)
    for bad in (-1, 2**63, True):
        assert "timestamp" in _error(WITNESS.cosign, text, bad)
    above = Signature(WITNESS.name, WITNESS.key_id, (2**63).to_bytes(8, "big") + bytes(64))
    assert "above 2**63 - 1" in _error(WITNESS.verifier().check, text, above)
    short = Signature(WITNESS.name, WITNESS.key_id, bytes(64))
    assert "a cosignature/v1 is 72" in _error(WITNESS.verifier().check, text, short)


def test_a_witnessed_checkpoint_opens_for_the_log_and_counts_its_cosigners() -> None:
    log = Signer.from_private_bytes("example.com/log", bytes(32))
    body = Checkpoint("example.com/log", 7, ROOT).text()
    signed = parse_note(sign_note(body, log))
    witnessed = format_note(
        Note(signed.text, (*signed.signatures, WITNESS.cosign(body, 1700000000)))
    )
    note = open_note(witnessed, [log.verifier()])
    assert len(note.signatures) == 2, "the cosignature is kept, unknown to the log's verifier"
    assert verify_cosignatures(note, [WITNESS.verifier()]) == {WITNESS.verifier(): 1700000000}
    assert verify_cosignatures(note, [Cosigner.generate("w2").verifier()]) == {}
    # The witness's key as a plain note verifier has another key id: the line is unknown.
    assert "no known key" in _error(
        open_note, witnessed, [Verifier(WITNESS.name, WITNESS.public_key())]
    )
    tampered = witnessed.replace("\n7\n", "\n8\n")
    assert "does not verify" in _error(
        verify_cosignatures, parse_note(tampered), [WITNESS.verifier()]
    )


def test_importing_the_module_loads_only_the_standard_library_and_cryptography() -> None:
    # The verification kit uses this module without the platform.
    script = (
        "import json, sys; before = set(sys.modules)\n"
        "import cryptography.hazmat.primitives.asymmetric.ed25519\n"
        "crypto = set(sys.modules)\n"
        "import limit_graph.core.notes\n"
        "ours = sorted(m for m in set(sys.modules) - crypto if m.startswith('limit_graph'))\n"
        "other = sorted({m.split('.')[0] for m in set(sys.modules) - crypto}\n"
        "               - set(sys.stdlib_module_names) - {'limit_graph', 'cryptography'})\n"
        "print(json.dumps([ours, other]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    ours, other = json.loads(done.stdout)
    assert other == []
    assert ours == [
        "limit_graph",
        "limit_graph.core",
        "limit_graph.core.notes",
        "limit_graph.core.notes.checkpoint",
        "limit_graph.core.notes.keys",
        "limit_graph.core.notes.text",
    ]
