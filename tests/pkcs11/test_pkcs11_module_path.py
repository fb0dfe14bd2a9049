"""A PKCS#11 module someone else could write is not loaded (issue 21, 8): loading runs the
module's code in the process that holds the keys. The file and every directory above it
must be owned by root or this user and not group/other writable; the override is
``KEYCELL_PKCS11_ALLOW_UNSAFE_MODULE=1``. Before, a 0666 module in a 0777 directory ran
its constructor as root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from keycell import pkcs11
from keycell.exceptions import Pkcs11Error
from pkcs11_support import Hsm

OPEN = (
    "import sys; from keycell import pkcs11; "
    "t = pkcs11.Token.open(module=sys.argv[1], token_label=sys.argv[2], pin_file=sys.argv[3]); "
    "print('opened', t.info['label'])"
)


def copy_module(hsm: Hsm, directory: Path, mode: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    module = directory / "libmodule.so"
    shutil.copyfile(hsm.module, module)
    module.chmod(mode)
    return module


def open_in_child(hsm: Hsm, module: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN, str(module), hsm.label, str(hsm.pin_file)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip


def test_a_module_in_a_world_writable_directory_is_refused(hsm: Hsm, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    module = copy_module(hsm, shared / "lib", 0o644)
    with pytest.raises(Pkcs11Error, match="refusing to load PKCS#11 module") as info:
        pkcs11.Token.open(module=module, token_label=hsm.label, pin=hsm.pin_buf())
    message = str(info.value)
    assert f'the directory "{shared}" is writable by others (mode 777)' in message
    assert "KEYCELL_PKCS11_ALLOW_UNSAFE_MODULE=1" in message
    with pytest.raises(Pkcs11Error, match="refusing to load"):
        pkcs11.list_tokens(module)


def test_a_writable_module_file_is_refused(hsm: Hsm, tmp_path: Path) -> None:
    module = copy_module(hsm, tmp_path / "lib", 0o666)
    with pytest.raises(Pkcs11Error, match=r"the module .* is writable by others"):
        pkcs11.Token.open(module=module, token_label=hsm.label, pin=hsm.pin_buf())
    module.chmod(0o664)
    with pytest.raises(Pkcs11Error, match="writable by its group"):
        pkcs11.Token.open(module=module, token_label=hsm.label, pin=hsm.pin_buf())


def test_a_symlink_is_judged_by_what_it_points_to(hsm: Hsm, tmp_path: Path) -> None:
    shared = tmp_path / "open"
    shared.mkdir()
    shared.chmod(0o777)
    link = tmp_path / "link.so"
    link.symlink_to(copy_module(hsm, shared, 0o644))
    with pytest.raises(Pkcs11Error, match=f'the directory "{shared}"'):
        pkcs11.Token.open(module=link, token_label=hsm.label, pin=hsm.pin_buf())


def test_the_override_loads_it_and_a_safe_module_needs_none(hsm: Hsm, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    module = copy_module(hsm, shared, 0o644)
    refused = open_in_child(hsm, module, {})
    assert refused.returncode != 0
    assert "refusing to load" in refused.stderr
    allowed = open_in_child(hsm, module, {"KEYCELL_PKCS11_ALLOW_UNSAFE_MODULE": "1"})
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == f"opened {hsm.label}"
    # The installed module (root-owned, 0644, in root-owned 0755 directories) loads.
    safe = open_in_child(hsm, Path(hsm.module), {})
    assert safe.returncode == 0, safe.stderr


def test_a_symlink_in_a_writable_directory_is_refused(hsm: Hsm, tmp_path: Path) -> None:
    """Found by review: the check ran on the resolved path only, so a symlink kept in a
    directory others can write let them choose which (root-owned) library is loaded."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    link = shared / "module.so"
    link.symlink_to(hsm.module)  # the installed, safe module
    with pytest.raises(Pkcs11Error, match=f'the directory "{shared}" is writable by others'):
        pkcs11.Token.open(module=link, token_label=hsm.label, pin=hsm.pin_buf())


def test_a_writable_ld_library_path_directory_is_refused(hsm: Hsm, tmp_path: Path) -> None:
    """Found by review: the module's dependencies are looked for in LD_LIBRARY_PATH first,
    so a directory there that others can write runs their code when the module loads."""
    shared = tmp_path / "libs"
    shared.mkdir()
    shared.chmod(0o777)
    r = open_in_child(hsm, Path(hsm.module), {"LD_LIBRARY_PATH": f"/usr/lib:{shared}"})
    assert r.returncode != 0
    assert f'the directory "{shared}" is writable by others' in r.stderr
