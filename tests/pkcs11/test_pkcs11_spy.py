"""What keycell sends to a module, seen by OpenSC's pkcs11-spy (a logging proxy module in
front of SoftHSM2): `C_Initialize` with `CKF_OS_LOCKING_OK`, one `C_Login` for two opens of
the same token, `C_Logout` at the last close. Also shows a token working through another
module path than SoftHSM2's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from pkcs11_support import Hsm
from support import run_python

SPY_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
    "/usr/lib/pkcs11-spy.so",
)
SPY = next((p for p in SPY_CANDIDATES if Path(p).exists()), None)

CODE = r"""
import sys
from keycell import pkcs11
spy, label, pin_file = sys.argv[1:4]
a = pkcs11.Token.open(module=spy, token_label=label, pin_file=pin_file)
pin = bytearray(open(pin_file, 'rb').read().strip())
b = pkcs11.Token.open(module=spy, token_label=label, pin=pin)
key = a.generate_ed25519(label="kc-spy")
key.public_key().verify(key.sign(b"via the spy"), b"via the spy")
a.close()
key2 = b.ed25519_private_key(label="kc-spy")
key2.sign(b"still logged in")
b.close()
print("ok")
"""


@pytest.mark.skipif(SPY is None, reason="OpenSC's pkcs11-spy.so is not installed")
def test_initialisation_and_login_as_the_module_sees_them(hsm: Hsm, tmp_path: Path) -> None:
    assert SPY is not None
    log = tmp_path / "spy.log"
    r = run_python(
        CODE, SPY, hsm.label, str(hsm.pin_file),
        env={"PKCS11SPY": hsm.module, "PKCS11SPY_OUTPUT": str(log)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    calls = log.read_text(errors="replace")
    init = calls[calls.index("C_Initialize") :].split("Returned", 1)[0]
    assert "CKF_OS_LOCKING_OK" in init
    assert calls.count(": C_Login\n") == 1  # the second open joined the login
    assert calls.count(": C_Logout\n") == 1  # at the last close
    assert calls.index(": C_Logout\n") > calls.rindex(": C_Sign\n")
