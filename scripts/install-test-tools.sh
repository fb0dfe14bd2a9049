#!/bin/sh
# System tools some tests use as independent references (each test skips when its tool is
# missing). Idempotent: installs only what is missing, and only as root.
set -eu

need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
missing=""
need oathtool oathtool
need keyctl keyutils  # the kernel keyring tests' independent client
need softhsm2-util softhsm2  # the PKCS#11 token the pkcs11 tests run against
need pkcs11-tool opensc  # the PKCS#11 tests' independent client
command -v ssh-add >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 \
    || missing="$missing openssh-client"  # the agent tests' independent clients
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"  # the ssh login test's server
need valgrind valgrind  # the X25519 kernel's constant-time check (memcheck)
need openssl openssl  # the x509/CSR, key format and EC/RSA interop tests' independent reference
need unshare util-linux  # the platform-secret tests' private mount and user namespaces
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; } \
        || echo "install-test-tools: could not install$missing (tests using it skip)" >&2
fi
if [ -n "$missing" ] && [ "$(id -u)" != 0 ]; then
    echo "install-test-tools: missing$missing and not root: install with" \
        "'sudo apt-get install$missing' (tests using them skip)" >&2
fi
