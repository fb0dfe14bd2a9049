#!/usr/bin/env bash
# Build and test keycell's release artifacts (`make wheel`, `make sdist`, `make test-dist`).
#
#   scripts/dist.sh wheel   abi3 manylinux2014 (= manylinux_2_17) x86_64 wheel in dist/, built
#                           with maturin + zig from PyPI (no docker), checked by auditwheel show
#                           and scripts/check_wheel.py
#   scripts/dist.sh sdist   sdist in dist/, then built from scratch by pip alone (build
#                           isolation: maturin from PyPI, the machine's cargo) in a fresh venv
#   scripts/dist.sh test    the wheel installed into a fresh venv of every CPython >= 3.11 on
#                           the machine, and the venv the sdist was built into: each runs
#                           scripts/dist_smoke.py (import, HMAC, Ed25519, X25519+HKDF, key
#                           store, `keycell doctor --json`) from outside the checkout
#
# Environment: PYTHON (the Python that makes the tool venv and the sdist venv; python3),
# DIST_PYTHONS (space-separated interpreters to test the wheel with, instead of the search),
# DIST_WORK (scratch folder, build/dist), DIST_TOOLS_READY (set by make after `dist.sh tools`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
WORK=${DIST_WORK:-$ROOT/build/dist}
TOOLS=$WORK/tools
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
mkdir -p "$WORK" dist

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
ARCH=$(uname -m)
WHEEL=dist/keycell-$VERSION-cp311-abi3-manylinux2014_$ARCH.manylinux_2_17_$ARCH.whl
SDIST=dist/keycell-$VERSION.tar.gz

step() { printf '\n== %s\n' "$*"; }

tools() {
    [ -z "${DIST_TOOLS_READY:-}" ] || return 0  # make ran `dist.sh tools` already
    if [ ! -x "$TOOLS/bin/python" ]; then
        "$PYTHON" -m venv "$TOOLS"
    fi
    "$TOOLS/bin/python" -m pip install -q -r scripts/dist-requirements.txt
}

wheel() {
    tools
    step "wheel: maturin build --release --locked --zig --compatibility manylinux2014"
    rm -f dist/keycell-"$VERSION"-*.whl
    # maturin finds zig through the ziglang package of the Python that runs it.
    PATH=$TOOLS/bin:$PATH "$TOOLS/bin/maturin" build --release --locked --zig \
        --compatibility manylinux2014 --interpreter "$TOOLS/bin/python" --out dist/
    [ -f "$WHEEL" ] || { echo "expected $WHEEL, found: $(ls dist)" >&2; exit 1; }
    step "auditwheel -v show $WHEEL"
    # -v: without it, auditwheel stops before saying whether external libraries are needed.
    "$TOOLS/bin/auditwheel" -v show "$WHEEL" 2>/dev/null | tee "$WORK/auditwheel-show.txt"
    "$TOOLS/bin/python" scripts/check_wheel.py "$WHEEL" "$WORK/auditwheel-show.txt" "$VERSION"
    ls -l "$WHEEL"
}

sdist() {
    tools
    step "sdist: maturin sdist"
    rm -f "$SDIST"
    "$TOOLS/bin/maturin" sdist --out dist/
    [ -f "$SDIST" ] || { echo "expected $SDIST" >&2; exit 1; }
    for f in PKG-INFO LICENSE Cargo.toml Cargo.lock pyproject.toml src/lib.rs python/keycell/py.typed; do
        tar -tzf "$SDIST" "keycell-$VERSION/$f" >/dev/null \
            || { echo "$f missing from $SDIST" >&2; exit 1; }
    done
    step "sdist: build from scratch with only pip, in a fresh venv ($WORK/venv-sdist)"
    rm -rf "$WORK/venv-sdist"
    "$PYTHON" -m venv "$WORK/venv-sdist"
    # No pip cache: a wheel cached from an earlier sdist of the same version is not a build.
    # A fresh target folder too: CARGO_TARGET_DIR from the caller would reuse objects.
    env -u CARGO_TARGET_DIR "$WORK/venv-sdist/bin/python" -m pip install --no-cache-dir "$SDIST"
    ls -l "$SDIST"
}

# Every CPython >= 3.11 on the machine: python3.N on PATH (pyenv shims only answer for the
# versions pyenv has selected), else the newest pyenv install of 3.N. Free-threaded builds
# (3.13t, 3.14t) cannot load an abi3 module and are named, not tested.
find_pythons() {
    local n exe cand
    for n in $(seq 11 20); do
        exe=""
        for cand in "$(command -v "python3.$n" 2>/dev/null || true)" \
                    $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$n".*/bin/python3."$n" 2>/dev/null | sort -V -r); do
            [ -n "$cand" ] || continue
            if "$cand" -c 'import sys, sysconfig; sys.exit(sys.implementation.name != "cpython" or bool(sysconfig.get_config_var("Py_GIL_DISABLED")))' 2>/dev/null; then
                exe=$cand; break
            fi
        done
        [ -n "$exe" ] && echo "$exe"
    done
    return 0
}

smoke() {  # smoke VENV LABEL [ARGS...]: run from outside the checkout
    local venv=$1 label=$2 out
    shift 2
    out=$(mktemp -d)
    cp scripts/dist_smoke.py "$out/"
    (cd "$out" && "$venv/bin/python" -I dist_smoke.py "$VERSION" "$@") \
        || { echo "FAILED: $label" >&2; exit 1; }
    rm -rf "$out"
}

# The doctor's degraded path: the same smoke test where mlock is denied (RLIMIT_MEMLOCK 0 and,
# for root, CAP_IPC_LOCK dropped). Keys still work (policy "warn"); the doctor must exit 1.
smoke_degraded() {  # smoke_degraded VENV LABEL
    local venv=$1 label=$2 out
    out=$(mktemp -d)
    cp scripts/dist_smoke.py "$out/"
    (
        cd "$out"
        ulimit -l 0
        if [ "$(id -u)" = 0 ]; then
            exec setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock -- \
                "$venv/bin/python" -I dist_smoke.py "$VERSION" --expect-degraded
        fi
        exec "$venv/bin/python" -I dist_smoke.py "$VERSION" --expect-degraded
    ) || { echo "FAILED: $label" >&2; exit 1; }
    rm -rf "$out"
}

test_dist() {
    local start py v results=()
    start=$(date +%s)
    [ -f "$WHEEL" ] || { echo "no $WHEEL: run make wheel" >&2; exit 1; }
    [ -x "$WORK/venv-sdist/bin/keycell" ] || { echo "no sdist build: run make sdist" >&2; exit 1; }
    local pythons=${DIST_PYTHONS:-$(find_pythons)}
    [ -n "$pythons" ] || { echo "no CPython >= 3.11 found" >&2; exit 1; }
    for py in $pythons; do
        v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        step "wheel on Python $v ($py)"
        rm -rf "$WORK/venv-$v"
        "$py" -m venv "$WORK/venv-$v"
        "$WORK/venv-$v/bin/python" -m pip install -q --no-cache-dir "$WHEEL"
        smoke "$WORK/venv-$v" "wheel on Python $v"
        results+=("wheel on Python $("$py" -c 'import sys; print(sys.version.split()[0])'): passed")
    done
    if [ "$(id -u)" != 0 ] || command -v setpriv >/dev/null; then
        step "wheel on Python $v with mlock denied (RLIMIT_MEMLOCK 0, no CAP_IPC_LOCK)"
        smoke_degraded "$WORK/venv-$v" "wheel on Python $v, mlock denied"
        results+=("wheel on Python $v, mlock denied: passed (doctor exit 1, DEGRADED)")
    else
        results+=("degraded-doctor check skipped: root without setpriv")
    fi
    step "sdist build ($WORK/venv-sdist)"
    smoke "$WORK/venv-sdist" "sdist build"
    results+=("sdist built by pip on Python $("$WORK/venv-sdist/bin/python" -c 'import sys; print(sys.version.split()[0])'): passed")
    step "test-dist: $(( $(date +%s) - start )) s"
    printf '  %s\n' "${results[@]}"
}

case "${1:-}" in
    tools) tools ;;
    wheel) wheel ;;
    sdist) sdist ;;
    test) test_dist ;;
    *) echo "usage: $0 tools|wheel|sdist|test" >&2; exit 2 ;;
esac
