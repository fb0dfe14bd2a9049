# keycell: one command for everything the tests need.
#   make test    install test deps, build + install keycell, run Rust and Python tests and lints
#   make lint    cargo fmt/clippy, ruff, mypy, stubtest
#   make bench   benchmarks against stdlib hmac, pyca/cryptography and PyNaCl
#   make wheel   abi3 manylinux2014 x86_64 wheel in dist/ (maturin + zig), checked by auditwheel
#   make sdist   sdist in dist/, then built from scratch by pip alone in a fresh venv
#   make test-dist  wheel + sdist, installed into fresh venvs of every CPython >= 3.11 here
#                and smoke-tested (import, HMAC, Ed25519, X25519, key store, keycell doctor)
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: test deps install test-rust test-python lint bench dist-tools wheel sdist test-dist

test: deps install test-rust test-python lint

deps:
	$(PIP) install -q -r requirements-test.txt
	sh scripts/install-test-tools.sh

install:
	$(PIP) install -q --force-reinstall --no-deps .

test-rust:
	cargo test --no-default-features --locked
	# The X25519 kernel's constant-time check again on the optimised build, whose code
	# is what ships (the release build once turned a masked select into a branch).
	cargo test --release --no-default-features --locked --lib \
		kernels::x25519::tests::ladder_is_constant_time_under_memcheck
	# A short run of the parser fuzzer (the long campaign: see tests/fuzz_parsers.rs).
	FUZZ_SECS=2 cargo test --no-default-features --locked --test fuzz_parsers -- --ignored

test-python:
	$(PYTHON) -m pytest -q tests

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --no-default-features -- -D warnings
	$(PYTHON) -m ruff check python tests benches scripts
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest keycell._native --allowlist stubtest-allowlist.txt

bench: install
	$(PIP) install -q -r benches/requirements.txt
	$(PYTHON) benches/run.py

# Release artifacts: scripts/dist.sh installs its tools (scripts/dist-requirements.txt) into
# its own venv under build/dist; README "Install" says what each artifact is.
# dist-tools first, so that `make -j test-dist` does not make the tool venv twice at once.
dist-tools:
	PYTHON=$(PYTHON) scripts/dist.sh tools

wheel: dist-tools
	PYTHON=$(PYTHON) DIST_TOOLS_READY=1 scripts/dist.sh wheel

sdist: dist-tools
	PYTHON=$(PYTHON) DIST_TOOLS_READY=1 scripts/dist.sh sdist

test-dist: wheel sdist
	PYTHON=$(PYTHON) scripts/dist.sh test
