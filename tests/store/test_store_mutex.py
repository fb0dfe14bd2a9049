"""The store's mutex is never held across a GIL release: `store.closed` on another thread
while `rotate_master` runs must not freeze the interpreter (runs in a child with a
deadline).
"""

from __future__ import annotations

import textwrap

import pytest
from support import run_python

ROTATE_CHILD = """
import faulthandler, os, tempfile, threading
faulthandler.dump_traceback_later(40, exit=True)
from keycell import KeyStore, SecretKey
d = tempfile.mkdtemp(); p = os.path.join(d, "s.kcs")
params = {"memory_kib": 32 * 1024, "iterations": 2, "lanes": 1}
st = KeyStore.create(p, master=bytearray(b"old pass"), kdf_params=params)
st.put("a", SecretKey.generate(32))
t = threading.Thread(target=lambda: st.rotate_master(bytearray(b"new pass"), kdf_params=params))
t.start()
seen = [st.closed, repr(st).startswith("<KeyStore")]   # while the rotation runs
t.join()
print(seen, st.closed)
"""


@pytest.mark.slow
def test_store_state_readable_while_rotating() -> None:
    proc = run_python(textwrap.dedent(ROTATE_CHILD), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "[False, True] False\n"

