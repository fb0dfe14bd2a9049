#!/bin/sh
# Install the system tools the tests use as independent clients: keyctl (Debian keyutils)
# for the kernel keyring tests. Idempotent: does nothing when keyctl is already there.
set -eu

if command -v keyctl >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-tools: keyctl is missing and this is not root; install it with" >&2
    echo "    sudo apt-get install keyutils" >&2
    echo "(the kernel keyring tests skip without it)" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: keyctl is missing and apt-get is not available; install the" >&2
    echo "keyutils package by hand (the kernel keyring tests skip without it)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends keyutils; then
    # A fresh machine may have no package lists yet.
    apt-get update
    apt-get install -y --no-install-recommends keyutils
fi
command -v keyctl >/dev/null 2>&1
