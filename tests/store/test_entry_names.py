"""Entry names that could spoof a listing are refused (src/store/format.rs
``check_name``): every character of Unicode categories Cc, Cf, Zl and Zp, with a
``ValueError`` naming the code point. Ordinary non-ASCII names stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from keycell import KeyStore, SecretKey

REFUSED = [
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE (Cf)
    "\u202a",  # LEFT-TO-RIGHT EMBEDDING (Cf)
    "\u2066",  # LEFT-TO-RIGHT ISOLATE (Cf)
    "\u2069",  # POP DIRECTIONAL ISOLATE (Cf)
    "\u200b",  # ZERO WIDTH SPACE (Cf)
    "\u200d",  # ZERO WIDTH JOINER (Cf)
    "\u2060",  # WORD JOINER (Cf)
    "\ufeff",  # BYTE ORDER MARK (Cf)
    "\u00ad",  # SOFT HYPHEN (Cf)
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A (Cf)
    "\u2028",  # LINE SEPARATOR (Zl)
    "\u2029",  # PARAGRAPH SEPARATOR (Zp)
    "\u0085",  # NEXT LINE (Cc)
    "\x1b",  # ESCAPE (Cc)
]
ALLOWED = ["clé", "鍵", "ключ", "prod key", "e\u0301", "🔑", "ﬁle", "שם"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    path: Path = tmp_path_factory.mktemp("names") / "s.kcs"
    return KeyStore.create(path, master=SecretKey.generate(32))


@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_invisible_and_bidi_characters_are_refused(store: KeyStore, char: str) -> None:
    key = SecretKey.generate(32)
    for name in (f"pay{char}roll", char, f"admin{char}"):
        with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
            store.put(name, key)
    assert all(char not in n for n in store.names())


def test_legitimate_non_ascii_names_are_kept(store: KeyStore) -> None:
    for name in ALLOWED:
        store.put(name, SecretKey.generate(16), overwrite=True)
    assert set(ALLOWED) <= set(store.names())
    for name in ALLOWED:
        assert name in store
