#!/usr/bin/env bash
# Installs a pinned Home Assistant Core for the integration test (Tests/TradfriBridgeTests/
# HomeAssistantCoreTests.swift) into a cache the machine may keep between runs, and prints the
# path of a launcher on its last line:
#
#   scripts/ha-install.sh [oldest|newest]      # default: oldest
#   <launcher> <config dir> [hass options]     # runs that Home Assistant on <config dir>
#
# oldest: Home Assistant 2024.3.3, the last release for Debian 12's Python 3.11, in a venv.
# newest: Home Assistant 2026.11.0, which needs Python >= 3.14.2: a Debian sid root made with
#         debootstrap provides it (needs root); Home Assistant runs chrooted there, in a mount
#         namespace of its own (/proc, /dev and the config directory mounted in), on the
#         machine's network (loopback).
#
# The cache (${XDG_CACHE_HOME:-$HOME/.cache}/tradfri-bridge/, or $TRADFRI_HA_CACHE) is keyed by
# the pinned versions; an empty cache works too (a few minutes, from Debian's mirror and PyPI).
# A first run of Home Assistant installs the requirements of the integrations it loads (frontend,
# recorder, mqtt, …) into the venv, so tests run it with --skip-pip and never install anything.
set -euo pipefail
cd "$(dirname "$0")/.."

release=${1:-oldest}
# Bump when the way of installing changes: caches made the old way are not used.
recipe=2
case "$release" in
  oldest)
    version=2024.3.3
    # josepy 2 breaks the acme package 2024.3 imports for every HTTP request.
    extras=("josepy<2")
    key="homeassistant-$version-debian12-python3.11-r$recipe"
    ;;
  newest)
    version=2026.11.0
    extras=()
    key="homeassistant-$version-sid-python3.14-r$recipe"
    ;;
  *)
    echo "usage: $0 [oldest|newest]" >&2
    exit 2
    ;;
esac

cache=${TRADFRI_HA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tradfri-bridge}
target="$cache/$key"
launcher="$target/hass"
mkdir -p "$cache"

# One installer at a time per version (tests may run this concurrently).
exec 9>"$cache/$key.lock"
flock 9

if [ -x "$launcher" ] && [ -e "$target/ready" ]; then
  echo "ha-install: Home Assistant $version is installed ($target)" >&2
  echo "$launcher"
  exit 0
fi

started=$(date +%s)
# Built in place (a venv cannot move); "ready" marks a complete installation.
rm -rf "$target"
mkdir -p "$target"

if [ "$release" = oldest ]; then
  /usr/bin/python3 -m venv "$target/venv"
  "$target/venv/bin/pip" install --quiet --disable-pip-version-check "homeassistant==$version" "${extras[@]}"
  cat >"$target/hass" <<EOF
#!/bin/sh
# Home Assistant $version (Python 3.11 venv). Usage: hass <config dir> [hass options]
config=\$1
shift
exec "$target/venv/bin/hass" --config "\$config" "\$@"
EOF
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "ha-install: the newest Home Assistant needs a Debian sid root: run as root" >&2
    exit 1
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
  fi
  # The mirror apt already uses (deb822 or one-line sources).
  mirror=$(sed -n 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  debootstrap --variant=minbase --include=python3.14,python3.14-venv,ca-certificates \
    sid "$target/root" "$mirror" >"$target/debootstrap.log" 2>&1 || {
    tail -n 30 "$target/debootstrap.log" >&2
    exit 1
  }
  # pip inside the root trusts what the host trusts (a proxy's CA, for one).
  cp /etc/ssl/certs/ca-certificates.crt "$target/root/host-ca.crt"
  mkdir -p "$target/root/config"
  chroot "$target/root" python3.14 -m venv /v
  pip_index=()
  if [ -n "${PIP_INDEX_URL:-}" ]; then pip_index=(--index-url "$PIP_INDEX_URL"); fi
  chroot "$target/root" env -u PIP_FIND_LINKS SSL_CERT_FILE=/host-ca.crt PIP_CERT=/host-ca.crt \
    /v/bin/pip install --quiet --disable-pip-version-check "${pip_index[@]}" "homeassistant==$version" "${extras[@]}"
  cat >"$target/hass" <<EOF
#!/bin/sh
# Home Assistant $version, chrooted into a Debian sid root (Python 3.14), in a mount namespace of
# its own so nothing stays mounted after it exits. Usage: hass <config dir> [hass options]
config=\$(realpath "\$1")
shift
exec unshare --mount --propagation private sh -c '
  root=\$1 config=\$2
  shift 2
  mount -t proc proc "\$root/proc"
  mount --rbind /dev "\$root/dev"
  mount --bind "\$config" "\$root/config"
  exec chroot "\$root" env SSL_CERT_FILE=/host-ca.crt /v/bin/hass --config /config "\$@"
' sh "$target/root" "\$config" "\$@"
EOF
fi
chmod +x "$target/hass"

# A first run installs the integrations' requirements (frontend, recorder, …, mqtt and every
# entity platform MQTT sets up: camera needs PyTurboJPEG, for one) into the venv.
const=$(find "$target" -path '*/site-packages/homeassistant/components/mqtt/const.py' | head -n 1)
platforms=$(/usr/bin/python3 - "$const" <<'PYTHON'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
for node in tree.body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("ENTITY_PLATFORMS", "PLATFORMS"):
        print("\n".join(f"{element.attr.lower()}:" for element in node.value.elts))
        break
PYTHON
)
warm=$(mktemp -d)
trap 'rm -rf "$warm"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$warm/configuration.yaml" <<EOF
http:
  server_host: 127.0.0.1
  server_port: $port
logger:
  default: info
mqtt:
$platforms
EOF
"$launcher" "$warm" >"$warm/output.txt" 2>&1 &
hass=$!
deadline=$(($(date +%s) + 900))
until grep -q "Home Assistant initialized" "$warm/home-assistant.log" 2>/dev/null; do
  if ! kill -0 "$hass" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
    echo "ha-install: the first run of Home Assistant did not finish:" >&2
    tail -n 40 "$warm/output.txt" "$warm/home-assistant.log" >&2 || true
    kill "$hass" 2>/dev/null || true
    exit 1
  fi
  sleep 1
done
kill -TERM "$hass"
wait "$hass" || true
grep -h "Attempting install of" "$warm/home-assistant.log" | sed 's/.*Attempting install of /ha-install: installed /' >&2 || true
touch "$target/ready"
echo "ha-install: Home Assistant $version installed in $(($(date +%s) - started)) s ($target)" >&2
echo "$launcher"
