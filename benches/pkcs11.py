"""Signing and HMAC through a PKCS#11 token (SoftHSM2) against the same through a local
keycell handle, and against python-pkcs11 on the same token key (what keycell's own layer
costs), in one run with interleaved rounds (paired ratios).

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


def _softhsm() -> str | None:
    """A throwaway SoftHSM2 token "bench" (PIN 1234); the module path, or None."""
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
    return module


def _python_pkcs11() -> Any:
    """python-pkcs11 (top-level name ``pkcs11``, which this file's own name shadows on
    ``sys.path``), or None when it is not installed."""
    here = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        import pkcs11 as lib  # python-pkcs11

        return lib if hasattr(lib, "lib") else None
    except ImportError:
        return None
    finally:
        sys.path[:] = saved


def build_cases(case_cls: Any, contender_cls: Any) -> list[Any]:
    """The PKCS#11 cases, as ``benches/run.py`` ``Case`` objects (empty without SoftHSM2)."""
    module = _softhsm()
    if module is None:
        return []
    # python-pkcs11 logs in first: keycell joins a login other code holds, not the reverse.
    lib = _python_pkcs11()
    session = None
    if lib is None:
        print("pkcs11 bench: python-pkcs11 is not installed; no reference", file=sys.stderr)
    else:
        session = lib.lib(module).get_token(token_label="bench").open(user_pin="1234")
    token = pkcs11.Token.open(module=module, token_label="bench", pin=bytearray(b"1234"))
    token_ed = token.generate_ed25519(label="bench-ed")
    token_mac = token.generate_secret("bench-mac", 32)
    local_ed = keycell.Ed25519PrivateKey.generate()
    local_mac = keycell.SecretKey.generate(32)
    _KEEP.extend([token, token_ed, token_mac, session])
    env: dict[str, Any] = {
        "tk": token_ed, "lk": local_ed, "tm": token_mac, "lm": local_mac, "m": os.urandom(32),
    }  # fmt: skip
    refs: list[Any] = []
    mac_refs: list[Any] = []
    if lib is not None and session is not None:
        env["rm"] = session.get_key(object_class=lib.ObjectClass.SECRET_KEY, label="bench-mac")
        env["HMAC"] = lib.Mechanism.SHA256_HMAC
        assert env["rm"].sign(env["m"], mechanism=env["HMAC"]) == token_mac.hmac(env["m"])
        mac_refs.append(
            (contender_cls("python-pkcs11, same token key", "rm.sign(m, mechanism=HMAC)", env),
             None)
        )  # fmt: skip
        env["rk"] = session.get_key(object_class=lib.ObjectClass.PRIVATE_KEY, label="bench-ed")
        env["EDDSA"] = lib.Mechanism.EDDSA
        assert env["rk"].sign(env["m"], mechanism=env["EDDSA"]) == token_ed.sign(env["m"])
        refs.append(
            (contender_cls("python-pkcs11, same token key", "rk.sign(m, mechanism=EDDSA)", env),
             None)
        )  # fmt: skip
    note = (
        "SoftHSM2 2.6.1 in this process (OpenSSL under it); the token's own cost "
        "(session lookup, locks, OpenSSL's EdDSA) dominates, as it would for any HSM"
    )
    return [
        case_cls(
            "Ed25519 sign, 32 B: PKCS#11 token (SoftHSM2) vs local key",
            contender_cls("keycell token key", "tk.sign(m)", env),
            [(contender_cls("keycell Ed25519PrivateKey", "lk.sign(m)", env), None), *refs],
            note,
        ),
        case_cls(
            "HMAC-SHA256, 32 B: PKCS#11 token (SoftHSM2) vs local key",
            contender_cls("keycell token secret", "tm.hmac(m)", env),
            [(contender_cls("keycell SecretKey", "lm.hmac(m)", env), None), *mac_refs],
            note,
        ),
    ]


def main() -> int:
    """Run these cases alone and print the paired ratios."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run  # benches/run.py

    for case in build_cases(run.Case, run.Contender):
        r = run.run_case(case, rounds=21, budget_s=0.02)
        print(f"{case.name}: keycell token {run._fmt_time(r.medians[case.keycell.name])}")
        for ref, _ in case.references:
            print(
                f"    vs {ref.name}: {run._fmt_time(r.medians[ref.name])}, "
                f"paired ratio (token / it) {r.ratios[ref.name]:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
