#!/usr/bin/env bash
# Installs what tradfri-bridge needs to build, test and run on Debian 12 (run as root).
# Services are never started by the install: avahi-daemon must not run in the machine's own
# network namespace during tests, and the demo starts its own mosquitto.
set -euo pipefail

packages=(
  # build
  libcoap3-dev libmosquitto-dev libavahi-client-dev libssl-dev pkg-config
  # run and test through the real parts
  libcoap3-bin mosquitto mosquitto-clients avahi-daemon avahi-utils dbus iproute2 curl tmux coreutils openssl
  # tests render Home Assistant's discovery templates with Jinja2, as Home Assistant does, and run
  # a real Home Assistant Core in a venv (scripts/ha-install.sh)
  python3 python3-jinja2 python3-venv util-linux
  # the newest Home Assistant needs Python 3.14: a Debian sid root (scripts/ha-newest.sh)
  debootstrap
  # the simulator's interop test builds aiocoap's DTLS transport from PyPI (scripts/aiocoap-env.sh):
  # DTLSSocket compiles tinydtls (autoconf, automake, gcc) and a Cython extension (python3-dev)
  python3-dev autoconf automake gcc libc6-dev
  # the Debian package: built with debhelper, checked by lintian, man and systemd-analyze
  # (packaging/build-deb.sh, scripts/package-test.sh)
  debhelper lintian man-db systemd
)

install_packages() {
  # Keep apt from starting daemons while installing (policy-rc.d exit 101 = "not allowed").
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  cleanup() { if [ -n "$guard" ]; then rm -f "$guard"; fi; }
  trap cleanup EXIT

  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${packages[@]}"
}

# --list: the package names, for callers that run apt themselves (.ci/run).
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-dependencies: every package is installed"
elif [ "$(id -u)" -ne 0 ]; then
  echo "install-dependencies: run as root (or with sudo) to install: ${missing[*]}" >&2
  exit 1
else
  install_packages
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "install-dependencies: the Swift 6 toolchain is not on PATH (see https://www.swift.org/install/linux/)" >&2
  exit 1
fi
