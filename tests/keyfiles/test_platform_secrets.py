"""`from_file(..., trust="mount")`: secrets where Kubernetes and Docker put them.

Accepted: a regular file of mode at most 0644 owned by root or this user, reached through
links owned by root or this user that stay inside its directory (Kubernetes' atomic
writer: `dir/name -> ..data/name`, `dir/..data -> ..<timestamp>`), every directory on the
way owned by root or this user and not writable by group or others unless it has the
sticky bit. The overflow uid is never a trusted owner. A read-only mount changes nothing:
the read-only cases use real read-only bind mounts in a private mount namespace
(`unshare -m`, as root) to show that; a test that cannot make one fails, it is not skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from keycell import (
    ECPrivateKey,
    Ed25519PrivateKey,
    InsecureKeyFileError,
    KeyFileError,
    RSAPrivateKey,
    SecretKey,
    X25519PrivateKey,
)
from support import NOBODY, write_key_file

KEY = b"k8s-secret-0123456789abcdefghijk"
OTHER_UID = 4242  # a non-root user that is not this process


def contents(key: SecretKey) -> bytes:
    with key.expose() as view:
        return view.tobytes()


def atomic_writer_layout(vol: Path, files: dict[str, bytes], mode: int = 0o644) -> Path:
    """The layout Kubernetes' atomic writer leaves in a secret volume `vol`: the files in
    `..<timestamp>/`, `..data -> ..<timestamp>` and `name -> ..data/name` for each."""
    vol.mkdir(mode=0o755, exist_ok=True)
    os.chmod(vol, 0o755)
    stamp = vol / "..2026_12_08_01_23_45.678901234"
    stamp.mkdir(mode=0o755)
    for name, data in files.items():
        write_key_file(stamp / name, data, mode)
    (vol / "..data").symlink_to(stamp.name)
    for name in files:
        (vol / name).symlink_to(f"..data/{name}")
    return vol


def test_kubernetes_atomic_writer_layout(tmp_path: Path) -> None:
    vol = atomic_writer_layout(tmp_path / "secret", {"api-key": KEY})
    key = SecretKey.from_file(vol / "api-key", trust="mount")
    assert contents(key) == KEY
    # The default rule is unchanged: a link is refused as before.
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        SecretKey.from_file(vol / "api-key")
    # The relative path a pod would use, from inside the volume.
    cwd = os.getcwd()
    os.chdir(vol)
    try:
        assert contents(SecretKey.from_file("api-key", trust="mount")) == KEY
    finally:
        os.chdir(cwd)


def test_every_private_key_class_takes_trust(tmp_path: Path) -> None:
    """One mechanism for every `from_file`: each key class reads the layout."""
    src = tmp_path / "src"
    src.mkdir()
    made = {
        "ed25519.pem": Ed25519PrivateKey.generate(),
        "x25519.pem": X25519PrivateKey.generate(),
        "ec.pem": ECPrivateKey.generate("P-384"),
        "rsa.pem": RSAPrivateKey.generate(2048),
    }
    files = {}
    for name, key in made.items():
        key.to_file(src / name)
        files[name] = (src / name).read_bytes()
    vol = atomic_writer_layout(tmp_path / "secret", files)
    ed = Ed25519PrivateKey.from_file(vol / "ed25519.pem", trust="mount")
    assert ed.public_key() == made["ed25519.pem"].public_key()
    x = X25519PrivateKey.from_file(vol / "x25519.pem", trust="mount")
    assert x.public_key() == made["x25519.pem"].public_key()
    ec = ECPrivateKey.from_file(vol / "ec.pem", trust="mount")
    assert ec.public_key() == made["ec.pem"].public_key()
    rsa = RSAPrivateKey.from_file(vol / "rsa.pem", trust="mount")
    assert rsa.public_key() == made["rsa.pem"].public_key()
    for cls in (Ed25519PrivateKey, X25519PrivateKey, ECPrivateKey, RSAPrivateKey):
        with pytest.raises(InsecureKeyFileError, match="symbolic link"):
            cls.from_file(vol / "ed25519.pem")  # type: ignore[attr-defined]


def test_unknown_trust_is_a_value_error(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k", KEY)
    with pytest.raises(ValueError, match='trust must be "owner" or "mount", not "any"'):
        SecretKey.from_file(path, trust="any")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trust must be"):
        Ed25519PrivateKey.from_file(path, trust="root")  # type: ignore[arg-type]


def test_links_that_leave_the_directory_are_refused(tmp_path: Path) -> None:
    vol = atomic_writer_layout(tmp_path / "secret", {"api-key": KEY})
    outside = write_key_file(tmp_path / "outside", KEY, 0o644)
    (vol / "up").symlink_to("../outside")
    (vol / "abs").symlink_to(outside)
    (vol / "parent").symlink_to("..")
    (vol / "via-parent").symlink_to("parent/outside")
    for name, why in [
        ("up", r'leaves its directory through "\.\."'),
        ("abs", "points to an absolute path"),
        ("via-parent", r'leaves its directory through "\.\."'),
    ]:
        with pytest.raises(InsecureKeyFileError, match=why):
            SecretKey.from_file(vol / name, trust="mount")
    # A link swapped to point out of the volume, as an attacker with write access would.
    (vol / "..data").unlink()
    (vol / "..data").symlink_to("../")
    with pytest.raises(InsecureKeyFileError, match=r"through \"\.\.\""):
        SecretKey.from_file(vol / "api-key", trust="mount")


def test_writable_directories_on_the_way_are_refused(tmp_path: Path) -> None:
    vol = atomic_writer_layout(tmp_path / "secret", {"api-key": KEY})
    stamp = next(vol.glob("..2026*"))
    for d, mode in [(vol, 0o777), (vol, 0o775), (stamp, 0o757)]:
        os.chmod(d, mode)
        with pytest.raises(InsecureKeyFileError, match="writable by group or others"):
            SecretKey.from_file(vol / "api-key", trust="mount")
        os.chmod(d, 0o755)
    assert contents(SecretKey.from_file(vol / "api-key", trust="mount")) == KEY
    # With the sticky bit (Kubernetes' volume directory is drwxrwxrwt root) nobody else
    # can rename or replace the entries, all owned by root or this user: accepted.
    for d in (vol, stamp):
        os.chmod(d, 0o1777)
        assert contents(SecretKey.from_file(vol / "api-key", trust="mount")) == KEY
        os.chmod(d, 0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_other_users_files_directories_and_links_are_refused(tmp_path: Path) -> None:
    vol = atomic_writer_layout(tmp_path / "secret", {"api-key": KEY})
    stamp = next(vol.glob("..2026*"))
    os.chown(stamp / "api-key", OTHER_UID, OTHER_UID)
    with pytest.raises(InsecureKeyFileError, match=f"owned by uid {OTHER_UID}"):
        SecretKey.from_file(vol / "api-key", trust="mount")
    os.chown(stamp / "api-key", 0, 0)
    os.chown(stamp, OTHER_UID, OTHER_UID)
    with pytest.raises(InsecureKeyFileError, match=f"owned by uid {OTHER_UID}"):
        SecretKey.from_file(vol / "api-key", trust="mount")
    os.chown(stamp, 0, 0)
    os.lchown(vol / "api-key", OTHER_UID, OTHER_UID)
    with pytest.raises(InsecureKeyFileError, match=f"symbolic link .* uid {OTHER_UID}"):
        SecretKey.from_file(vol / "api-key", trust="mount")


def test_modes_beyond_0644_and_other_files_are_refused(tmp_path: Path) -> None:
    vol = atomic_writer_layout(tmp_path / "secret", {"api-key": KEY})
    target = next(vol.glob("..2026*")) / "api-key"
    for mode in (0o664, 0o646, 0o744, 0o654, 0o2644, 0o1644):
        os.chmod(target, mode)
        with pytest.raises(InsecureKeyFileError, match="go beyond 0644"):
            SecretKey.from_file(vol / "api-key", trust="mount")
    for mode in (0o644, 0o640, 0o444, 0o440, 0o400, 0o600):
        os.chmod(target, mode)
        assert contents(SecretKey.from_file(vol / "api-key", trust="mount")) == KEY
    with pytest.raises(KeyFileError, match="No such file") as missing:
        SecretKey.from_file(vol / "absent", trust="mount")
    assert missing.value.errno == 2
    (vol / "dir").symlink_to("..data")
    with pytest.raises(InsecureKeyFileError, match="directory"):
        SecretKey.from_file(vol / "dir", trust="mount")
    os.mkfifo(vol / "..data" / "fifo")
    (vol / "fifo").symlink_to("..data/fifo")
    with pytest.raises(InsecureKeyFileError, match="not a regular file"):
        SecretKey.from_file(vol / "fifo", trust="mount")


# --- real read-only bind mounts in a private mount namespace -------------------------

CHILD = r"""
import json, sys
from keycell import SecretKey, KeycellError
out = {}
for name in sys.argv[1:]:
    try:
        with SecretKey.from_file(name, trust="mount").expose() as v:
            out[name] = ["ok", v.tobytes().decode()]
    except KeycellError as e:
        out[name] = [type(e).__name__, str(e)]
    try:
        SecretKey.from_file(name)
        out[name].append("owner-ok")
    except KeycellError as e:
        out[name].append(type(e).__name__)
print(json.dumps(out))
"""


def in_read_only_mount(mount: Path, *paths: Path) -> dict[str, list[str]]:
    """Bind-mount `mount` read-only onto itself in a new private mount namespace and load
    each of `paths` there with trust="mount" and with the default rule."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.fail("unshare(1) and mount(8) are needed for the read-only mount tests")
    script = (
        'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && '
        'exec "$@"'
    )
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(mount),
            sys.executable,
            "-c",
            CHILD,
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, (
        f"cannot make a private mount namespace with a read-only bind mount "
        f"(these tests run as root in CI): {proc.stderr}"
    )
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root (CI runs as root)")
def test_read_only_bind_mounts(tmp_path: Path) -> None:
    """Docker's secrets: 0444 files of any owner on a read-only mount; Kubernetes'
    layout on one; and what stays refused there."""
    mnt = tmp_path / "run-secrets"
    mnt.mkdir(mode=0o755)
    docker = write_key_file(mnt / "db-password", KEY, 0o444)
    os.chown(docker, OTHER_UID, OTHER_UID)
    foreign_dir = mnt / "foreign"
    foreign_dir.mkdir(mode=0o755)
    write_key_file(foreign_dir / "key", KEY, 0o400)
    os.chown(foreign_dir, OTHER_UID, OTHER_UID)
    os.chown(foreign_dir / "key", OTHER_UID, OTHER_UID)
    vol = atomic_writer_layout(mnt / "k8s", {"api-key": KEY})
    loose = write_key_file(mnt / "loose", KEY, 0o666)
    outside = write_key_file(tmp_path / "outside", KEY, 0o644)
    (mnt / "escape").symlink_to(outside)
    writable = mnt / "writable"
    writable.mkdir()
    os.chmod(writable, 0o777)
    write_key_file(writable / "key", KEY, 0o644)

    got = in_read_only_mount(
        mnt, docker, foreign_dir / "key", vol / "api-key", loose, mnt / "escape", writable / "key"
    )
    ok = ["ok", KEY.decode()]
    # Root's files through Kubernetes' layout: accepted (as off the mount).
    assert got[str(vol / "api-key")] == [*ok, "InsecureKeyFileError"]
    # A read-only mount is no substitute for ownership: another user's file or directory
    # is refused on it as off it.
    assert got[str(docker)][0] == "InsecureKeyFileError"
    assert f"owned by uid {OTHER_UID}" in got[str(docker)][1]
    assert got[str(foreign_dir / "key")][0] == "InsecureKeyFileError"
    assert f"owned by uid {OTHER_UID}" in got[str(foreign_dir / "key")][1]
    # A directory writable by all (no sticky bit) is refused on a read-only mount too:
    # the directory underneath a read-only bind mount may be writable elsewhere.
    assert got[str(writable / "key")][0] == "InsecureKeyFileError"
    assert "without the sticky bit" in got[str(writable / "key")][1]
    # Still refused: a mode beyond 0644, a link out of the mount.
    assert got[str(loose)][0] == "InsecureKeyFileError"
    assert "go beyond 0644" in got[str(loose)][1]
    assert got[str(mnt / "escape")][0] == "InsecureKeyFileError"
    assert "absolute path" in got[str(mnt / "escape")][1]

    # The same files off the mount (in this namespace the mount never existed).
    for path in (docker, foreign_dir / "key"):
        with pytest.raises(InsecureKeyFileError, match=f"owned by uid {OTHER_UID}"):
            SecretKey.from_file(path, trust="mount")
    with pytest.raises(InsecureKeyFileError, match="writable by group or others"):
        SecretKey.from_file(writable / "key", trust="mount")
    os.chown(docker, 0, 0)
    assert contents(SecretKey.from_file(docker, trust="mount")) == KEY


@pytest.mark.skipif(NOBODY is None or os.geteuid() != 0, reason="needs root and 'nobody'")
def test_read_only_bind_mount_of_a_directory_another_user_writes(tmp_path: Path) -> None:
    """The outside review's PoC 02: a read-only bind mount of a sticky world-writable
    directory in which another user made Kubernetes' layout. Kubernetes' own volume
    directory is `drwxrwxrwt root` and accepted; the other user's entries are not."""
    assert NOBODY is not None
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    vol = atomic_writer_layout(shared / "vol", {"hmac": KEY})
    got = in_read_only_mount(shared, vol / "hmac")
    assert got[str(vol / "hmac")][:2] == ["ok", KEY.decode()]  # all root's: accepted
    stamp = vol / "..2026_12_08_01_23_45.678901234"
    # Another user owns, in turn, the link farm's link, the timestamped directory and the
    # file: each is refused though everything sits on a read-only mount.
    for path, what in [
        (vol / "..data", "symbolic link"),
        (stamp, "directory"),
        (stamp / "hmac", "it is owned by"),
    ]:
        os.lchown(path, NOBODY[0], NOBODY[1])
        got = in_read_only_mount(shared, vol / "hmac")
        assert got[str(vol / "hmac")][0] == "InsecureKeyFileError", path
        assert what in got[str(vol / "hmac")][1], got
        assert f"uid {NOBODY[0]}" in got[str(vol / "hmac")][1], got
        os.lchown(path, 0, 0)
    # The sticky world-writable directory itself, owned by another user: refused.
    os.chown(shared / "vol", NOBODY[0], NOBODY[1])
    os.chmod(shared / "vol", 0o1777)
    got = in_read_only_mount(shared, vol / "hmac")
    assert got[str(vol / "hmac")][0] == "InsecureKeyFileError"
    os.chown(shared / "vol", 0, 0)
    assert contents(SecretKey.from_file(vol / "hmac", trust="mount")) == KEY


@pytest.mark.skipif(NOBODY is None or os.geteuid() != 0, reason="needs root and 'nobody'")
def test_a_read_only_mount_forged_in_a_user_namespace(world_dir: Path) -> None:
    """The outside review's PoC 03: an unprivileged user makes a read-only tmpfs with a key
    of their choosing in their own user and mount namespace; root reaches it through
    /proc/PID/root. It is refused: its owner is that user, whatever the mount says."""
    assert NOBODY is not None
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.fail("unshare(1) and setpriv(1) are needed for this test")
    mnt = world_dir / "evil"
    mnt.mkdir()
    os.chown(mnt, NOBODY[0], NOBODY[1])
    script = (
        'mount -t tmpfs -o mode=0755 none "$1" && printf %s "$2" > "$1/hmac" && '
        'chmod 0644 "$1/hmac" && mount -o remount,bind,ro "$1" && echo ready && exec cat'
    )
    attacker = subprocess.Popen(
        [
            "setpriv", "--reuid", str(NOBODY[0]), "--regid", str(NOBODY[1]),
            "--clear-groups", "unshare", "--user", "--map-root-user", "--mount",
            "sh", "-c", script, "sh", str(mnt), KEY.decode(),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert attacker.stdout is not None
        line = attacker.stdout.readline()  # blocks until the mount is made or sh exits
        assert line == "ready\n", attacker.stderr.read() if attacker.stderr else line
        forged = Path(f"/proc/{attacker.pid}/root") / str(mnt).lstrip("/") / "hmac"
        assert os.statvfs(forged.parent).f_flag & os.ST_RDONLY
        with pytest.raises(InsecureKeyFileError, match=f"owned by uid {NOBODY[0]}"):
            SecretKey.from_file(forged, trust="mount")
    finally:
        attacker.communicate(timeout=60)  # closes stdin: cat ends


OVERFLOW_CHILD = r"""
import json, os, sys
from keycell import SecretKey, InsecureKeyFileError
assert os.geteuid() == 65534, os.geteuid()
out = []
try:
    SecretKey.from_file(sys.argv[1], trust="mount")
    out.append("accepted")
except InsecureKeyFileError as e:
    out.append(str(e))
os.environ["CREDENTIALS_DIRECTORY"] = sys.argv[2]
try:
    SecretKey.from_credential("hmac")
    out.append("accepted")
except InsecureKeyFileError as e:
    out.append(str(e))
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_the_overflow_uid_is_never_a_trusted_owner(world_dir: Path) -> None:
    """The outside review's PoC 01: in a user namespace where this process runs as 65534,
    every owner not mapped into it shows as 65534 too. Another user's file and directory
    are refused under trust="mount" and from_credential though their owner equals euid."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare(1) is needed for this test")
    overflow = int(Path("/proc/sys/kernel/overflowuid").read_text())
    assert overflow == 65534  # the PoC's setting: --map-user=65534 below
    d = world_dir / "ovf"
    d.mkdir(mode=0o755)
    write_key_file(d / "hmac", KEY, 0o644)
    creds = world_dir / "creds"
    creds.mkdir()
    write_key_file(creds / "hmac", KEY, 0o444)
    os.chmod(creds, 0o555)
    for p in (d, d / "hmac", creds, creds / "hmac"):
        os.chown(p, OTHER_UID, OTHER_UID)
    proc = subprocess.run(
        [
            "unshare", "--user", "--map-user=65534", "--map-group=65534",
            sys.executable, "-c", OVERFLOW_CHILD, str(d / "hmac"), str(creds),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    mount_msg, cred_msg = json.loads(proc.stdout)
    assert "uid 65534, the overflow uid" in mount_msg
    assert "uid 65534, the overflow uid" in cred_msg


@pytest.mark.skipif(NOBODY is None or os.geteuid() != 0, reason="needs root and 'nobody'")
def test_a_non_root_service_reads_a_root_owned_secret(world_dir: Path) -> None:
    """A pod running as a non-root user reads the root-owned 0644 files of its volume;
    the same user's own rule refuses them."""
    vol = atomic_writer_layout(world_dir / "secret", {"api-key": KEY})
    code = (
        "import os, sys\n"
        "from keycell import SecretKey, InsecureKeyFileError\n"
        "uid, gid = int(sys.argv[2]), int(sys.argv[3])\n"
        "os.setgroups([]); os.setgid(gid); os.setuid(uid)\n"
        "with SecretKey.from_file(sys.argv[1], trust='mount').expose() as v:\n"
        "    print(v.tobytes().decode())\n"
        "try:\n"
        "    SecretKey.from_file(os.path.realpath(sys.argv[1]))\n"
        "except InsecureKeyFileError as e:\n"
        "    print('refused:', e)\n"
    )
    assert NOBODY is not None
    proc = subprocess.run(
        [sys.executable, "-c", code, str(vol / "api-key"), str(NOBODY[0]), str(NOBODY[1])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == KEY.decode()
    assert lines[1].startswith("refused:")
    assert "owned by uid 0" in lines[1]
