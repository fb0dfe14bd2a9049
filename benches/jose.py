"""JWT encode and decode with keycell.jose against PyJWT (with pyca/cryptography keys and
``bytes`` secrets, as its users hold them), in one run with interleaved rounds (paired
ratios), for HS256, EdDSA, ES256 and RS256 (2048 bits).

    python benches/jose.py            # these cases alone
    python benches/run.py             # with everything else (benches/results/latest.md)

Skipped, with a note, when PyJWT is missing. A measurement, not a test: nothing here fails
on timing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import keycell
from keycell.jose import jwt as kjwt

CLAIMS = {"sub": "alice", "aud": "api", "iat": 1_700_000_000, "exp": 4_000_000_000}


def _pkcs8(key: Any) -> bytearray:
    from cryptography.hazmat.primitives import serialization

    return bytearray(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _keys() -> dict[str, tuple[Any, Any, Any, Any]]:
    """alg -> (keycell signing key, keycell verifying key, PyJWT signing, PyJWT verifying)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    secret = os.urandom(32)
    mac = keycell.SecretKey.from_buffer(bytearray(secret))
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    k_ed = keycell.Ed25519PrivateKey.from_private_bytes(bytearray(ed.private_bytes_raw()))
    k_ec = keycell.ECPrivateKey.from_der(_pkcs8(p256))
    k_rsa = keycell.RSAPrivateKey.from_der(_pkcs8(r))
    return {
        "HS256": (mac, mac, secret, secret),
        "EdDSA": (k_ed, k_ed.public_key(), ed, ed.public_key()),
        "ES256": (k_ec, k_ec.public_key(), p256, p256.public_key()),
        "RS256": (k_rsa, k_rsa.public_key(), r, r.public_key()),
    }


def build_cases(case_cls: Any, contender_cls: Any) -> list[Any]:
    """The JOSE cases, as ``benches/run.py`` ``Case`` objects (empty without PyJWT)."""
    try:
        import jwt as pyjwt
    except ImportError:
        print("jose bench: PyJWT is not installed; skipped", file=sys.stderr)
        return []
    cases = []
    for alg, (ks, kv, ps, pv) in _keys().items():
        token = kjwt.encode(CLAIMS, ks, algorithm=alg)
        env = {
            "kjwt": kjwt,
            "pyjwt": pyjwt,
            "claims": CLAIMS,
            "alg": alg,
            "algs": [alg],
            "ks": ks,
            "kv": kv,
            "ps": ps,
            "pv": pv,
            "token": token,
        }
        cases.append(
            case_cls(
                f"JWT encode, {alg}",
                contender_cls("keycell.jose", "kjwt.encode(claims, ks, algorithm=alg)", env),
                [(contender_cls("PyJWT", "pyjwt.encode(claims, ps, algorithm=alg)", env), None)],
            )
        )
        cases.append(
            case_cls(
                f"JWT decode (verify + claims), {alg}",
                contender_cls(
                    "keycell.jose", "kjwt.decode(token, kv, algorithms=algs, audience='api')", env
                ),
                [
                    (
                        contender_cls(
                            "PyJWT", "pyjwt.decode(token, pv, algorithms=algs, audience='api')", env
                        ),
                        None,
                    )
                ],
            )
        )
    return cases


def main() -> int:
    """Run these cases alone and print the paired ratios."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run  # benches/run.py

    return int(run.run_module_alone(build_cases, "keycell.jose"))


if __name__ == "__main__":
    raise SystemExit(main())
