#!/usr/bin/env bash
# Benchmarks the bridge as it ships: installs the dependencies if any is missing (as root), builds
# the bridge in release mode with the Swift runtime linked statically (what packaging/build-deb.sh
# ships) and the benchmark, then runs the benchmark. Arguments go to tradfri-bench:
#   ./scripts/bench.sh            full run, about 4 minutes, prints a table
#   ./scripts/bench.sh --json     the same as JSON
#   ./scripts/bench.sh --quick    about 45 s, noisier
#   ./scripts/bench.sh fleet      one bridge, 10 gateways × 100 lights: initial sync, change → MQTT
#                                 with every gateway busy, memory; about 1 minute. Options:
#                                 --gateways 10 --lights 100 --rate 200 (in all) --seconds 30 --json
# Build output goes to standard error, so standard output is only the table (or the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/mosquitto ] || ! pkg-config --exists libcoap-3-openssl libmosquitto 2>/dev/null; then
  ./scripts/install-dependencies.sh >&2
fi

swift build -c release --static-swift-stdlib --product tradfri-bridge >&2
swift build -c release --static-swift-stdlib --product tradfri-bench >&2
exec "$(swift build -c release --static-swift-stdlib --show-bin-path)/tradfri-bench" "$@"
