"""Wycheproof HMAC-SHA256/384/512 vectors (every case of each file).

Reading of the files (see tests/vectors/wycheproof/README.md): a group's ``tagSize`` (bits)
is either the full digest or half of it; a truncated ``tag`` is the leftmost
``tagSize / 8`` bytes of the HMAC. keycell verifies truncated tags of at least 16 bytes
against the same number of leading bytes, which covers every truncated group here
(16, 24 and 32 bytes).

- ``valid``: ``SecretKey.hmac`` starts with the tag (equals it for full-length tags), and
  both ``SecretKey.verify_hmac`` and ``HMAC.verify`` accept it.
- ``invalid`` (all flagged ``ModifiedTag``): both verifications raise ``InvalidSignature``.
- ``acceptable``: these files have none (checked below), so no behaviour needs choosing.
- Empty keys: keycell refuses empty keys (``ValueError``). A case with an empty key would
  count as "not applicable: keycell refuses empty keys" and asserts that refusal. The
  current files have no empty keys (their key sizes are half the digest, the digest and
  520 bits), which ``test_file_inventory`` pins down.
"""

from __future__ import annotations

import pytest
from keycell import HMAC, InvalidSignature, SecretKey
from vectors import WycheproofCase, load_wycheproof, result_counts, wycheproof_params

FILES = {
    "hmac_sha256_test.json": ("HMACSHA256", "sha256", 32),
    "hmac_sha384_test.json": ("HMACSHA384", "sha384", 48),
    "hmac_sha512_test.json": ("HMACSHA512", "sha512", 64),
}
ALGORITHMS = {algo: (name, size) for algo, name, size in FILES.values()}


@pytest.mark.parametrize("case", wycheproof_params(*FILES))
def test_hmac_vector(case: WycheproofCase) -> None:
    algorithm, digest_size = ALGORITHMS[case.algorithm]
    key, msg, tag = case.hex("key"), case.hex("msg"), case.hex("tag")
    tag_size = case.group["tagSize"] // 8
    assert len(tag) == tag_size

    if not key:
        # Not applicable: keycell refuses empty keys.
        with pytest.raises(ValueError, match="key length"):
            SecretKey.from_buffer(bytearray(key))
        return

    sk = SecretKey.from_buffer(bytearray(key))
    full = sk.hmac(msg, algorithm)
    assert len(full) == digest_size

    def stream_verify() -> None:
        h = HMAC(sk, algorithm)
        h.update(msg)
        h.verify(tag)

    if case.result == "valid":
        assert full[:tag_size] == tag
        sk.verify_hmac(msg, tag, algorithm)
        stream_verify()
        if tag_size == digest_size:
            h = HMAC(sk, algorithm)
            h.update(msg)
            assert h.finalize() == tag
    elif case.result == "invalid":
        assert full[:tag_size] != tag
        with pytest.raises(InvalidSignature):
            sk.verify_hmac(msg, tag, algorithm)
        with pytest.raises(InvalidSignature):
            stream_verify()
    else:
        pytest.fail(f"unexpected result {case.result!r}")
    sk.destroy()


@pytest.mark.parametrize("name", list(FILES))
def test_file_inventory(name: str) -> None:
    """What the runner above covers, per file: every case is valid or invalid, every
    invalid case is a modified tag, tags are full or half length, and no key is empty."""
    algo, _, digest_size = FILES[name]
    cases = load_wycheproof(name)
    assert {c.algorithm for c in cases} == {algo}
    assert result_counts(name) == {"valid": 66, "invalid": 108}
    assert all(c.flags == ["ModifiedTag"] for c in cases if c.result == "invalid")
    assert {c.group["tagSize"] // 8 for c in cases} == {digest_size // 2, digest_size}
    assert min(len(c.hex("key")) for c in cases) > 0


def test_empty_key_is_refused() -> None:
    """The rule the runner applies to empty-key vectors (none in the current files)."""
    with pytest.raises(ValueError, match="key length"):
        SecretKey.from_buffer(b"")
