#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs every test (unit and integration through
# the real mosquitto, coap-client-openssl, avahi-daemon in private network namespaces, and the
# gateway simulator). Needs root for apt and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-dependencies.sh

# Layout as .swift-format says (swift-format ships with the toolchain); a finding fails the run.
swift format lint --strict --recursive Sources Tests Package.swift

swift build --build-tests
# The simulator's interop test runs aiocoap from PyPI in a cached virtual environment: make it
# now (once per set of versions; kept in ~/.cache between runs) so its build shows up here.
./scripts/aiocoap-env.sh > /dev/null
# Bound the whole run; on timeout kill the test process group so no child is left behind.
timeout --kill-after=30 3000 swift test --skip-build 2>&1 | tee .build/test-output.txt
