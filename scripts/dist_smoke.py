"""Smoke test of an installed keycell artifact (wheel or sdist build), not of the source tree.

Run by ``scripts/dist.sh test`` with the Python of a fresh virtual environment, from a
directory outside the checkout:

    python dist_smoke.py EXPECTED_VERSION [--expect-degraded]

It checks that keycell is imported from that environment's site-packages, that the version
is the one Cargo.toml names, known-answer HMAC-SHA256 (RFC 4231) and Ed25519 (RFC 8032)
results, a streaming HMAC, an X25519 exchange + HKDF, a key store round trip, and
``keycell doctor --json`` through the installed console script. The doctor exits 1 on a
machine where some protection is degraded (a container without mlock rights, say); that
is reported, not failed: the check is that its JSON parses, every probe ran and the exit
status matches the report's ``ok``. With ``--expect-degraded`` (run where mlock is denied)
the doctor must say so: exit status 1 and the mlock probe failed.
"""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from importlib.metadata import version
from pathlib import Path

# RFC 4231, test case 2 (a key shorter than the block, the usual case).
HMAC_KEY = b"Jefe"
HMAC_DATA = b"what do ya want for nothing?"
HMAC_SHA256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
# RFC 8032, section 7.1, TEST 2.
ED_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
ED_PUBLIC = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
ED_MESSAGE = "72"
ED_SIGNATURE = (
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"dist smoke FAILED: {what}")
    print(f"  ok  {what}")


def main() -> int:
    expected_version = sys.argv[1]
    expect_degraded = sys.argv[2:] == ["--expect-degraded"]
    import keycell
    from keycell import (
        HMAC,
        Ed25519PrivateKey,
        Ed25519PublicKey,
        KeyStore,
        SecretKey,
        X25519PrivateKey,
        _native,
        hkdf,
    )

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    pkg = Path(keycell.__file__).resolve().parent
    check(pkg.parent == site, f"keycell imported from the environment ({pkg})")
    check(Path(_native.__file__).name == "_native.abi3.so", "native module is the abi3 build")
    check(keycell.__version__ == expected_version, f"__version__ == {expected_version}")
    check(version("keycell") == expected_version, "installed metadata has the same version")
    check((pkg / "py.typed").is_file(), "py.typed installed")

    with SecretKey.from_buffer(bytearray(HMAC_KEY)) as key:
        tag = key.hmac(HMAC_DATA)
        check(tag.hex() == HMAC_SHA256, "HMAC-SHA256 RFC 4231 case 2")
        key.verify_hmac(HMAC_DATA, tag)
        stream = HMAC(key)
        stream.update(HMAC_DATA[:7])
        stream.update(HMAC_DATA[7:])
        check(stream.finalize() == tag, "streaming HMAC matches one-shot")
        check(isinstance(key.protection.as_dict(), dict), "protection report readable")

    signer = Ed25519PrivateKey.from_private_bytes(bytearray.fromhex(ED_SEED))
    signature = signer.sign(bytes.fromhex(ED_MESSAGE))
    check(signature.hex() == ED_SIGNATURE, "Ed25519 sign RFC 8032 test 2")
    public = signer.public_key()
    check(public.public_bytes_raw().hex() == ED_PUBLIC, "Ed25519 public key RFC 8032 test 2")
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(ED_PUBLIC)).verify(
        signature, bytes.fromhex(ED_MESSAGE)
    )
    check(True, "Ed25519 verify")

    alice, bob = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    with alice.exchange(bob.public_key()) as s1, bob.exchange(alice.public_key()) as s2:
        with hkdf(s1, length=32, info=b"smoke") as k1, hkdf(s2, length=32, info=b"smoke") as k2:
            check(k1 == k2, "X25519 exchange + HKDF agree")
            std = hmac.new(b"\0" * 32, b"", "sha256")  # stdlib still works beside keycell
            check(len(std.digest()) == 32, "stdlib hmac beside keycell")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "keys.kcs")
        params = {"memory_kib": 8192, "iterations": 1, "lanes": 1}
        with KeyStore.create(path, master=bytearray(b"smoke pass"), kdf_params=params) as store:
            store.put("signing", signer)
            with SecretKey.from_buffer(bytearray(HMAC_KEY)) as key:
                store.put("api", key)
        with KeyStore.open(path, master=bytearray(b"smoke pass")) as store:
            check(sorted(store.names()) == ["api", "signing"], "key store lists both entries")
            again = store.get("signing")
            check(again.public_key() == public, "key store returns the same Ed25519 key")
            api = store.get("api")
            check(api.hmac(HMAC_DATA).hex() == HMAC_SHA256, "key store returns the same secret")
    signer.destroy()

    exe = Path(sys.executable).parent / "keycell"
    check(exe.is_file(), f"console script installed ({exe})")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    check(out.stdout.strip() == f"keycell {expected_version}", "keycell --version")
    doc = subprocess.run([str(exe), "doctor", "--json"], capture_output=True, text=True)
    check(doc.returncode in (0, 1), f"keycell doctor --json exit status {doc.returncode}")
    report = json.loads(doc.stdout)
    check(report["keycell"] == expected_version, "doctor reports the installed version")
    probes = report["probes"]
    check(
        set(probes) == {"mlock", "dontdump", "wipeonfork", "memfd_secret"}
        and all(isinstance(p["ok"], bool) for p in probes.values()),
        "doctor ran every probe",
    )
    check("protection" in report["key"], "doctor allocated and checked a test key")
    check((doc.returncode == 0) == report["ok"], "doctor exit status matches its verdict")
    if expect_degraded:
        check(
            doc.returncode == 1 and not probes["mlock"]["ok"],
            "doctor reports the denied mlock (exit status 1)",
        )
    verdict = (
        "all protections hold" if report["ok"] else "DEGRADED: " + "; ".join(report["degraded"])
    )
    print(f"  doctor: {verdict}")
    print(
        f"dist smoke passed: keycell {expected_version} on Python "
        f"{sys.version.split()[0]} ({sys.prefix})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
