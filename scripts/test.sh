#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs every test (unit and integration through
# the real mosquitto, coap-client-openssl, avahi-daemon in private network namespaces, the
# gateway simulator, and a real Home Assistant Core 2024.3), then a bounded soak: the bridge
# binary under datagram loss, mixed load and every kind of fault, its end state compared with the
# gateway's light by light (README, Reliability), the Home Assistant test again against the
# newest release (a Debian sid root with Python 3.14), the Debian package (lintian, install,
# upgrade, remove, purge in throwaway Debian 12 roots) and every fuzz target for a bounded number
# of inputs. Needs root for apt, network namespaces, debootstrap and chroots.
#   ./scripts/test.sh                   everything (what CI runs: about 45 minutes from a fresh clone)
#   TRADFRI_TESTS=quick ./scripts/test.sh   the suite and the soak only (about 10 minutes once built)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-dependencies.sh

# Layout as .swift-format says (swift-format ships with the toolchain); a finding fails the run.
swift format lint --strict --recursive Sources Tests Package.swift

swift build --build-tests
# The Home Assistant Core the integration test runs (cached between runs; a few minutes when not).
./scripts/ha-install.sh oldest >/dev/null
# The simulator's interop test runs aiocoap from PyPI in a cached virtual environment: make it
# now (once per set of versions; kept in ~/.cache between runs) so its build shows up here.
./scripts/aiocoap-env.sh > /dev/null
# Bound the whole run; on timeout kill the test process group so no child is left behind.
# At most 4 tests at a time (as fast in all: most wait on processes): many start real processes (the bridge, simulators, mosquitto, Home
# Assistant), and hundreds at once on two cores starve their deadlines (a test that passes alone
# then fails on CPU time it never got).
# The takeover tests (leases kept by heartbeats a second apart), the real browser and aiocoap run on their
# own afterwards: beside hundreds of others on two cores they get too little CPU to keep their
# timing, which is what they check.
alone='GatewayOwnershipTests|TakeoverBridgeTests|WebBrowserTests|AiocoapInteropTests'
timeout --kill-after=30 3000 swift test --skip-build --experimental-maximum-parallelization-width 4 \
  --skip "$alone" 2>&1 | tee .build/test-output.txt
timeout --kill-after=30 1200 swift test --skip-build --filter "$alone" 2>&1 | tee -a .build/test-output.txt

# The soak, bounded: 104 lights, 5 % loss each way, 150 s of load, a fault every 30 s (one of
# each kind). scripts/soak.sh runs the long version. Logs stay in .build/soak-ci.
rm -rf .build/soak-ci
timeout --kill-after=30 900 "$(swift build --show-bin-path)/tradfri-bench" soak --seed 1 --lights 100 \
  --duration 150 --fault-interval 30 --keep .build/soak-ci

[ "${TRADFRI_TESTS:-all}" = quick ] && exit 0

# The Home Assistant integration test against the newest release (a Debian sid root with
# Python 3.14, cached: about 3 minutes the first time, half a minute after).
./scripts/ha-newest.sh
# The Debian package: lintian, then install, upgrade over 0.1.0, remove and purge in throwaway
# Debian 12 roots (cached under ~/.cache/tradfri-bridge): about 9 minutes from a fresh clone, most
# of it the release build.
./scripts/package-test.sh
# Every fuzz target for a bounded number of inputs: about 4 minutes with the instrumented build.
./scripts/fuzz.sh --ci
