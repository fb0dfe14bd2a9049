# keycell: one command for everything the tests need.
#   make test    install test deps, build + install keycell, run Rust and Python tests and lints
#   make lint    cargo fmt/clippy, ruff, mypy, stubtest
#   make bench   benchmarks against stdlib hmac, pyca/cryptography and PyNaCl
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: test deps install test-rust test-python lint bench

test: deps install test-rust test-python lint

deps:
	$(PIP) install -q -r requirements-test.txt
	sh scripts/install-test-tools.sh

install:
	$(PIP) install -q --force-reinstall --no-deps .

test-rust:
	cargo test --no-default-features --locked

test-python:
	$(PYTHON) -m pytest -q tests

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --no-default-features -- -D warnings
	$(PYTHON) -m ruff check python tests benches
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest keycell._native --allowlist stubtest-allowlist.txt

bench: install
	$(PIP) install -q -r benches/requirements.txt
	$(PYTHON) benches/run.py
