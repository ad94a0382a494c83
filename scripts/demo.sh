#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running bridge:
#   installs the dependencies, builds, and runs the bridge in the foreground.
#
# With no real gateway or broker given, it uses the embedded defaults: the bundled gateway
# simulator (a "demo home" with a light of every kind, a plug, a blind, an air purifier, remotes,
# rooms and scenes) and a local mosquitto. To use real ones instead:
#   TRADFRI_GATEWAY=192.168.1.20 TRADFRI_SECURITY_CODE=<code on the label> \
#   TRADFRI_MQTT=mqtt://localhost:1883 ./scripts/demo.sh
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo="$root/.demo"
mkdir -p "$demo"

if [ "$(id -u)" -eq 0 ]; then
  ./scripts/install-dependencies.sh
elif ! command -v coap-client-openssl >/dev/null || ! command -v mosquitto >/dev/null; then
  sudo ./scripts/install-dependencies.sh
fi

echo "==> building (release)"
swift build -c release --product tradfri-bridge
swift build -c release --product tradfri-gateway-sim
bin=$(swift build -c release --show-bin-path)

# Stopped newest first, each before the next: the bridge says goodbye to a broker still there.
# The simulator and mosquitto run in sessions of their own, so Ctrl-C reaches only the bridge.
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_port_free() { ! ss -Hlun "sport = :$1" | grep -q .; }

# --- the gateway -----------------------------------------------------------------------------
gateway="${TRADFRI_GATEWAY:-}"
code="${TRADFRI_SECURITY_CODE:-}"
if [ -z "$gateway" ]; then
  code_file="$demo/simulator-security-code"
  # (tr ends with SIGPIPE when head has enough; that is expected)
  [ -f "$code_file" ] || { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 16 > "$code_file" || true; }
  code=$(cat "$code_file")
  sim_port=5684
  udp_port_free "$sim_port" || sim_port=0
  echo "==> starting the gateway simulator (demo home)"
  setsid "$bin/tradfri-gateway-sim" --listen "127.0.0.1:$sim_port" --security-code "$code" \
    --state-dir "$demo/simulator" --request-log "$demo/simulator-requests.log" \
    > "$demo/simulator.out" 2> "$demo/simulator.log" < <(tail -f /dev/null) &
  pids+=($!)
  for _ in $(seq 50); do grep -q "listening on" "$demo/simulator.out" 2>/dev/null && break; sleep 0.1; done
  gateway=$(grep -o '127.0.0.1:[0-9]*' "$demo/simulator.out" | head -1)
  [ -n "$gateway" ] || { echo "the simulator did not start:"; cat "$demo/simulator.log"; exit 1; }
fi

# --- the broker ------------------------------------------------------------------------------
broker="${TRADFRI_MQTT:-}"
mqtt_port=1883
if [ -z "$broker" ]; then
  if port_free 1883; then
    echo "==> starting a local mosquitto on 127.0.0.1:1883"
  else
    mqtt_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "==> port 1883 is taken; starting a local mosquitto on 127.0.0.1:$mqtt_port"
  fi
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$demo/mosquitto.conf"
  setsid mosquitto -c "$demo/mosquitto.conf" > "$demo/mosquitto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do port_free "$mqtt_port" || break; sleep 0.1; done
  broker="mqtt://127.0.0.1:$mqtt_port"
else
  mqtt_port=$(echo "$broker" | sed -n 's#.*:\([0-9]*\)/*$#\1#p')
  mqtt_port=${mqtt_port:-1883}
fi

# --- pairing (once) --------------------------------------------------------------------------
credentials="$demo/credentials.json"
if [ -f "$credentials" ] && ! "$bin/tradfri-bridge" devices --credentials "$credentials" --gateway "$gateway" --timeout 3 >/dev/null 2>&1; then
  rm -f "$credentials"   # a new simulator state or another gateway
fi
if [ ! -f "$credentials" ]; then
  [ -n "$code" ] || { echo "set TRADFRI_SECURITY_CODE to the code on the gateway's label"; exit 1; }
  echo "==> pairing with the gateway at $gateway"
  "$bin/tradfri-bridge" auth --gateway "$gateway" --security-code "$code" --credentials "$credentials"
fi
"$bin/tradfri-bridge" devices --credentials "$credentials" --gateway "$gateway"

# --- the web page ----------------------------------------------------------------------------
web_port=8080
port_free "$web_port" || web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat > "$demo/config.yaml" <<YAML
gateway:
  address: $gateway
  credentials: $credentials
mqtt:
  server: $broker
  base_topic: tradfri
discovery:
  enabled: false
  advertise: false
web:
  listen: 127.0.0.1:$web_port
  password_file: $demo/web-password
pairing:
  registry: $demo/state/paired-devices.json
  audit_log: $demo/state/audit.log
YAML

p=""
[ "$mqtt_port" = 1883 ] || p=" -p $mqtt_port"
cat <<TEXT

==> the bridge is starting. In another terminal, try:
  mosquitto_sub$p -v -t 'tradfri/#'
  mosquitto_pub$p -t tradfri/living_room_ceiling/set -m '{"state":"ON","brightness":120,"color_temp":300}'
  mosquitto_pub$p -t tradfri/hallway/set -m TOGGLE
  mosquitto_pub$p -t tradfri/living_room/set -m '{"scene":"RELAX"}'
  mosquitto_pub$p -t tradfri/bedroom_blind/set -m '{"position":50}'
The web page: http://127.0.0.1:$web_port/ ($( [ -f "$demo/web-password" ] && echo "log in as admin" ||
  echo "first set its password: $bin/tradfri-bridge web-password --config $demo/config.yaml"))
Ctrl-C stops the bridge$( [ -z "${TRADFRI_GATEWAY:-}" ] && echo ", the simulator")$( [ -z "${TRADFRI_MQTT:-}" ] && echo " and mosquitto").

TEXT
"$bin/tradfri-bridge" run --config "$demo/config.yaml" &
pids+=($!)
wait "${pids[-1]}"
