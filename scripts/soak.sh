#!/usr/bin/env bash
# The long soak: the bridge as it ships (release build), against the gateway simulator behind a
# relay that loses 5 % of the datagrams each way, with mixed load from several MQTT clients and a
# second gateway identity, and a fault every minute (gateway reboot, simulator kill -9 and
# start, broker kill -9 and start, a burst of 200 commands to one light). Each seed runs 10
# minutes; the run fails at the first seed whose end state differs from the gateway, light by
# light, or that misses a recovery limit (README, Reliability).
#   ./scripts/soak.sh               seeds 1 2 3, 10 minutes each
#   SEEDS="7" DURATION=120 ./scripts/soak.sh
# Logs and a JSON report per seed go to .soak/seed-<n>/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/mosquitto ] || ! command -v coap-client-openssl >/dev/null; then
  ./scripts/install-dependencies.sh >&2
fi

swift build -c release --static-swift-stdlib --product tradfri-bridge >&2
swift build -c release --static-swift-stdlib --product tradfri-gateway-sim >&2
swift build -c release --static-swift-stdlib --product tradfri-bench >&2
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)

for seed in ${SEEDS:-1 2 3}; do
  out=".soak/seed-$seed"
  rm -rf "$out"
  mkdir -p "$out"
  echo "==> soak seed $seed"
  "$bin/tradfri-bench" soak --seed "$seed" --duration "${DURATION:-600}" --fault-interval "${FAULT_INTERVAL:-60}" \
    --lights "${LIGHTS:-50}" --keep "$out" "$@"
done
