"""``keycell store list`` shows invisible characters escaped (python/keycell/cli/common.py
``shown_name``): new names cannot hold them, but stores written by earlier builds may."""

from __future__ import annotations

from keycell.cli.common import shown_name


def test_invisible_characters_are_shown_escaped() -> None:
    assert shown_name("pay\u202eroll") == "pay\\u202eroll"
    assert shown_name("a\u200bb\ufeff") == "a\\u200bb\\ufeff"
    assert shown_name("x\u2028y\u2029\x1b") == "x\\u2028y\\u2029\\u001b"
    assert shown_name("back\\slash") == "back\\u005cslash"  # escapes stay unambiguous
    for name in ("clé", "鍵", "prod key", "e\u0301"):
        assert shown_name(name) == name
