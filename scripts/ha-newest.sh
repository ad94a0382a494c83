#!/usr/bin/env bash
# Runs the Home Assistant integration test (HomeAssistantCoreTests) against the newest release
# this project is tested with, instead of the oldest one that ./scripts/test.sh uses: it needs
# Python 3.14, so scripts/ha-install.sh builds a Debian sid root with debootstrap (as root, once;
# cached). Usage: ./scripts/ha-newest.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ha-install.sh newest >/dev/null
swift build --build-tests
TRADFRI_HA_RELEASE=newest timeout --kill-after=30 1800 \
  swift test --skip-build --filter HomeAssistantCoreTests 2>&1 | tee .build/ha-newest-output.txt
