"""Signing and HMAC through a PKCS#11 token (SoftHSM2) against the same through a local
keycell handle, in one run with interleaved rounds (paired ratios).

    python benches/pkcs11.py          # these cases alone
    python benches/run.py             # with everything else (benches/results/latest.md)

A throwaway token directory is made for the run (``SOFTHSM2_CONF`` is set before the
module is loaded) and removed at exit. Skipped, with a note, when SoftHSM2 or
``softhsm2-util`` is missing. A measurement, not a test: nothing here fails on timing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import keycell
from keycell import pkcs11

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
_KEEP: list[Any] = []  # the token and keys stay open for the whole run


def _token() -> pkcs11.Token | None:
    module = next((m for m in MODULES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        print("pkcs11 bench: SoftHSM2 is not installed; skipped", file=sys.stderr)
        return None
    d = Path(tempfile.mkdtemp(prefix="keycell-bench-softhsm-"))
    atexit.register(shutil.rmtree, d, True)
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench",
         "--pin", "1234", "--so-pin", "5678"],
        check=True, capture_output=True,
    )  # fmt: skip
    return pkcs11.Token.open(module=module, token_label="bench", pin=bytearray(b"1234"))


def build_cases(case_cls: Any, contender_cls: Any) -> list[Any]:
    """The PKCS#11 cases, as ``benches/run.py`` ``Case`` objects (empty without SoftHSM2)."""
    token = _token()
    if token is None:
        return []
    token_ed = token.generate_ed25519(label="bench-ed")
    token_mac = token.generate_secret("bench-mac", 32)
    local_ed = keycell.Ed25519PrivateKey.generate()
    local_mac = keycell.SecretKey.generate(32)
    _KEEP.extend([token, token_ed, token_mac])
    env = {"tk": token_ed, "lk": local_ed, "tm": token_mac, "lm": local_mac, "m": os.urandom(32)}
    note = (
        "SoftHSM2 2.6.1 in this process (OpenSSL under it); the token's own cost "
        "(session lookup, locks, OpenSSL's EdDSA) dominates, as it would for any HSM"
    )
    return [
        case_cls(
            "Ed25519 sign, 32 B: PKCS#11 token (SoftHSM2) vs local key",
            contender_cls("keycell token key", "tk.sign(m)", env),
            [(contender_cls("keycell Ed25519PrivateKey", "lk.sign(m)", env), None)],
            note,
        ),
        case_cls(
            "HMAC-SHA256, 32 B: PKCS#11 token (SoftHSM2) vs local key",
            contender_cls("keycell token secret", "tm.hmac(m)", env),
            [(contender_cls("keycell SecretKey", "lm.hmac(m)", env), None)],
            note,
        ),
    ]


def main() -> int:
    """Run these cases alone and print the paired ratios."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run  # benches/run.py

    for case in build_cases(run.Case, run.Contender):
        r = run.run_case(case, rounds=21, budget_s=0.02)
        ref = case.references[0][0].name
        print(
            f"{case.name}: token {run._fmt_time(r.medians[case.keycell.name])}, "
            f"local {run._fmt_time(r.medians[ref])}, paired ratio {r.ratios[ref]:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
