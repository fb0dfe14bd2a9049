"""Wycheproof HKDF-SHA256/512 vectors (every case of each file).

- ``valid``: ``keycell.hkdf`` returns a ``SecretKey`` equal to ``okm``, and so does
  ``hkdf_expand(hkdf_extract(...))``. An empty ``salt`` ("EmptySalt") means HashLen zero
  bytes (RFC 5869); it is passed as ``b""`` and, equivalently, as ``None``.
- ``invalid`` (all flagged ``SizeTooLarge``: size > 255 x HashLen): ``ValueError``, from
  both ``hkdf`` and ``hkdf_expand``.
- ``acceptable``: these files have none (checked below).
- Every IKM in these files is non-empty (keycell refuses empty keys), pinned down below.
"""

from __future__ import annotations

import keycell
import pytest
from keycell import SecretKey
from vectors import WycheproofCase, load_wycheproof, result_counts, wycheproof_params

FILES = {
    "hkdf_sha256_test.json": ("HKDF-SHA-256", "sha256", 32),
    "hkdf_sha512_test.json": ("HKDF-SHA-512", "sha512", 64),
}
ALGORITHMS = {algo: (name, size) for algo, name, size in FILES.values()}


def exposed(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


@pytest.mark.parametrize("case", wycheproof_params(*FILES))
def test_hkdf_vector(case: WycheproofCase) -> None:
    algorithm, _ = ALGORITHMS[case.algorithm]
    ikm, salt, info, okm = case.hex("ikm"), case.hex("salt"), case.hex("info"), case.hex("okm")
    size = case.test["size"]
    key = SecretKey.from_buffer(bytearray(ikm))

    if case.result == "valid":
        out = keycell.hkdf(key, length=size, salt=salt, info=info, algorithm=algorithm)
        assert isinstance(out, SecretKey)
        assert len(out) == size
        assert exposed(out) == okm
        assert out == SecretKey.from_buffer(bytearray(okm))
        prk = keycell.hkdf_extract(key, salt=salt, algorithm=algorithm)
        out2 = keycell.hkdf_expand(prk, length=size, info=info, algorithm=algorithm)
        assert out2 == out
        if not salt:
            out3 = keycell.hkdf(key, length=size, salt=None, info=info, algorithm=algorithm)
            assert out3 == out
    elif case.result == "invalid":
        assert "SizeTooLarge" in case.flags
        with pytest.raises(ValueError, match="length must be between 1 and"):
            keycell.hkdf(key, length=size, salt=salt, info=info, algorithm=algorithm)
        prk = keycell.hkdf_extract(key, salt=salt, algorithm=algorithm)
        with pytest.raises(ValueError, match="length must be between 1 and"):
            keycell.hkdf_expand(prk, length=size, info=info, algorithm=algorithm)
    else:
        pytest.fail(f"unexpected result {case.result!r}")


@pytest.mark.parametrize("name", list(FILES))
def test_file_inventory(name: str) -> None:
    algo, _, digest_size = FILES[name]
    cases = load_wycheproof(name)
    assert {c.algorithm for c in cases} == {algo}
    counts = result_counts(name)
    assert counts["invalid"] == 3
    assert set(counts) == {"valid", "invalid"}
    for c in cases:
        too_large = c.test["size"] > 255 * digest_size
        assert too_large == (c.result == "invalid")
    assert min(len(c.hex("ikm")) for c in cases) > 0
    assert max(c.test["size"] for c in cases if c.result == "valid") == 255 * digest_size
