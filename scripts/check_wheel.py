"""Check a built keycell wheel: its tag against ``auditwheel show``, its contents, its metadata.

    python check_wheel.py WHEEL AUDITWHEEL_SHOW_OUTPUT EXPECTED_VERSION

Fails unless auditwheel finds the wheel consistent with the manylinux tag the file name
claims (``manylinux2014`` is the legacy name of ``manylinux_2_17``), reports no external
shared library outside the manylinux allowlist, and the wheel carries the abi3 native
module, ``py.typed``, the stub, the license file and the metadata users and tools read.
"""

from __future__ import annotations

import re
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

LEGACY = {
    "manylinux1": "manylinux_2_5",
    "manylinux2010": "manylinux_2_12",
    "manylinux2014": "manylinux_2_17",
}


def fail(msg: str) -> None:
    raise SystemExit(f"wheel check FAILED: {msg}")


def main() -> int:
    wheel, show_path, expected_version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    show = " ".join(show_path.read_text().split())

    # keycell-0.1.0-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
    name, ver, pytag, abitag, plat = wheel.name[: -len(".whl")].split("-")
    if (name, ver) != ("keycell", expected_version):
        fail(f"{wheel.name}: expected keycell {expected_version}")
    if (pytag, abitag) != ("cp311", "abi3"):
        fail(f"{wheel.name}: expected a cp311-abi3 wheel")
    claimed = set()
    for tag in plat.split("."):
        for legacy, pep600 in LEGACY.items():
            if tag.startswith(legacy + "_"):
                tag = pep600 + tag[len(legacy) :]
        claimed.add(tag)
    if len(claimed) != 1:
        fail(f"{wheel.name}: platform tags name different policies: {sorted(claimed)}")
    (claim,) = claimed

    m = re.search(r'is consistent with the following platform tag: "([^"]+)"', show)
    if not m:
        fail(f"no platform tag in the auditwheel output:\n{show}")
    if m.group(1) != claim:
        fail(f"the wheel claims {claim}, auditwheel finds it consistent with {m.group(1)}")
    if "The wheel requires no external shared libraries!" not in show:
        fail(f"the wheel needs shared libraries outside the manylinux allowlist:\n{show}")
    if "unsupported ISA extensions" in show:
        fail("the wheel depends on unsupported ISA extensions")
    print(f"  ok  auditwheel: {claim}, no external libraries beyond the allowlist")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f"keycell-{expected_version}.dist-info"
        for required in (
            "keycell/_native.abi3.so",
            "keycell/_native.pyi",
            "keycell/py.typed",
            "keycell/__init__.py",
            "keycell/cli/__init__.py",
            f"{dist_info}/licenses/LICENSE",
            f"{dist_info}/entry_points.txt",
        ):
            if required not in names:
                fail(f"{required} missing from the wheel")
        if any(n.endswith(".so") and n != "keycell/_native.abi3.so" for n in names):
            fail("the wheel bundles shared libraries besides keycell/_native.abi3.so")
        meta = Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        license_text = zf.read(f"{dist_info}/licenses/LICENSE").decode()
    if "Apache License" not in license_text or "Version 2.0" not in license_text:
        fail("the LICENSE in the wheel is not the Apache License 2.0")
    print("  ok  contents: abi3 module, stub, py.typed, LICENSE, console script")

    expect = {
        "Name": "keycell",
        "Version": expected_version,
        "Requires-Python": ">=3.11",
        "License-Expression": "Apache-2.0",
        "License-File": "LICENSE",
    }
    for field, value in expect.items():
        if meta.get(field) != value:
            fail(f"METADATA {field} is {meta.get(field)!r}, expected {value!r}")
    classifiers = set(meta.get_all("Classifier") or [])
    for c in (
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    ):
        if c not in classifiers:
            fail(f"classifier {c!r} missing")
    if not meta.get("Keywords"):
        fail("no keywords")
    print("  ok  metadata: version, Requires-Python, license, classifiers, keywords")
    return 0


if __name__ == "__main__":
    sys.exit(main())
