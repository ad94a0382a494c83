#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs every test (unit and integration through
# the real mosquitto, coap-client-openssl, avahi-daemon in private network namespaces, the
# gateway simulator, and a real Home Assistant Core 2024.3). Needs root for apt and network
# namespaces. ./scripts/ha-newest.sh runs the Home Assistant test against the newest release.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-dependencies.sh

# Layout as .swift-format says (swift-format ships with the toolchain); a finding fails the run.
swift format lint --strict --recursive Sources Tests Package.swift

swift build --build-tests
# The Home Assistant Core the integration test runs (cached between runs; a few minutes when not).
./scripts/ha-install.sh oldest >/dev/null
# Bound the whole run; on timeout kill the test process group so no child is left behind.
timeout --kill-after=30 3000 swift test --skip-build 2>&1 | tee .build/test-output.txt
