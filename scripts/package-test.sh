#!/usr/bin/env bash
# Tests the Debian package as a user meets it, with the real dpkg and apt in throwaway Debian 12
# roots (debootstrap), never on this machine itself:
#   - lintian (errors, warnings, info and pedantic tags; each override carries its reason);
#   - the man pages render without a warning;
#   - a fresh install: user, state directory, conffile, not enabled, the binaries run (so Depends
#     from dpkg-shlibdeps is complete), the bridge pairs with the simulator;
#   - an upgrade over 0.1.0 (the package as build-deb.sh made it before debhelper, from
#     Tests/Package/previous-0.1.0) with a changed configuration, credentials, paired devices, a
#     broker password and an enabled service: all kept, no conffile prompt with standard input
#     closed, the kept credentials still work; an upgrade with the configuration untouched
#     takes the new one silently;
#   - the unit: systemd-analyze verify, and systemd-analyze security at an exposure of 1.6 at most;
#   - remove (configuration, credentials and paired devices stay) and purge (nothing stays: no
#     file, user, group, statoverride or enablement link).
# Needs root. The Debian 12 root is cached as a tarball under
# ${XDG_CACHE_HOME:-$HOME/.cache}/tradfri-bridge/, keyed by what it holds (about 2 minutes to
# make from an empty cache, from the Debian mirror apt uses; seconds after).
#   scripts/package-test.sh [path/to/tradfri-bridge_<version>_<arch>.deb]   (default: build it)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "package-test: run as root (dpkg, debootstrap and chroot need it)" >&2
  exit 1
fi
# Every mount made below disappears with this mount namespace when the script ends.
if [ -z "${PACKAGE_TEST_NAMESPACE:-}" ]; then
  exec unshare --mount --propagation private env PACKAGE_TEST_NAMESPACE=1 "$0" "$@"
fi

passed=0
failed=0
check() {
  local what=$1
  shift
  if "$@" >/tmp/package-test-check.$$ 2>&1; then
    passed=$((passed + 1))
    echo "ok      $what"
  else
    failed=$((failed + 1))
    echo "FAILED  $what"
    sed 's/^/        /' /tmp/package-test-check.$$ | tail -n 20
  fi
}

# --- the packages ------------------------------------------------------------------------------
deb=${1:-}
if [ -z "$deb" ]; then deb=$(./packaging/build-deb.sh | tail -n 1); fi
deb=$(realpath "$deb")
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)

work=$(mktemp -d /tmp/package-test.XXXXXX)
trap 'rm -rf "$work" /tmp/package-test-check.$$' EXIT

# The 0.1.0 package, laid out as build-deb.sh did before debhelper, from today's binaries.
previous="$repo/Tests/Package/previous-0.1.0"
old="$work/old"
install -D -m 0755 "$bin/tradfri-bridge" "$old/usr/bin/tradfri-bridge"
install -D -m 0755 "$bin/tradfri-gateway-sim" "$old/usr/bin/tradfri-gateway-sim"
install -D -m 0644 "$previous/tradfri-bridge.service" "$old/lib/systemd/system/tradfri-bridge.service"
git -C "$repo" show b18abb7:config/tradfri-bridge.example.yaml >"$work/old-example.yaml" 2>/dev/null ||
  cp config/tradfri-bridge.example.yaml "$work/old-example.yaml"
install -D -m 0644 "$work/old-example.yaml" "$old/usr/share/tradfri-bridge/config.example.yaml"
install -D -m 0644 packaging/mosquitto/tradfri-bridge-dynsec.conf "$old/usr/share/tradfri-bridge/mosquitto/tradfri-bridge-dynsec.conf"
install -D -m 0755 packaging/mosquitto/setup-dynsec.sh "$old/usr/share/tradfri-bridge/mosquitto/setup-dynsec.sh"
install -D -m 0644 README.md "$old/usr/share/doc/tradfri-bridge/README.md"
install -d -m 0755 "$old/etc/tradfri-bridge" "$old/DEBIAN"
sed -e "s/@VERSION@/0.1.0/" -e "s/@ARCH@/$arch/" "$previous/control.in" >"$old/DEBIAN/control"
install -m 0755 "$previous/postinst" "$previous/postrm" "$previous/prerm" "$old/DEBIAN/"
olddeb="$work/tradfri-bridge_0.1.0_$arch.deb"
dpkg-deb --root-owner-group --build "$old" "$olddeb" >/dev/null

echo "== tradfri-bridge $version ($(du -k "$deb" | cut -f1) KiB; installed $(dpkg-deb -f "$deb" Installed-Size) KiB)"

# --- lintian and the man pages -----------------------------------------------------------------
changes="${deb%.deb}.changes"
lintian_target=$deb
if [ -e "$changes" ]; then lintian_target=$changes; fi
lintian_clean() {
  local out status=0
  out=$(lintian --fail-on error,warning,info,pedantic -I --pedantic "$lintian_target" 2>/dev/null) || status=$?
  echo "$out"
  [ "$status" -eq 0 ] && [ -z "$out" ]
}
check "lintian -I --pedantic: no tag (each override has its reason)" lintian_clean
dpkg-deb -x "$deb" "$work/contents"
for page in "$work"/contents/usr/share/man/man1/*.1.gz; do
  check "man page $(basename "$page" .gz) renders without a warning" \
    sh -c "out=\$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l '$page' 2>&1 >/dev/null); echo \"\$out\"; [ -z \"\$out\" ]"
done
for tool in "$work"/contents/usr/bin/*; do
  check "$(basename "$tool") has a man page" test -e "$work/contents/usr/share/man/man1/$(basename "$tool").1.gz"
  check "$(basename "$tool") is stripped" sh -c "! readelf -S '$tool' | grep -q '\.debug_info'"
done
check "/etc/tradfri-bridge/config.yaml is a conffile" sh -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/tradfri-bridge/config.yaml"

# --- the Debian 12 root ------------------------------------------------------------------------
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
fi
mirror=${mirror:-http://deb.debian.org/debian}
# What the packages need from the archive, downloaded into the cached root so installing needs no
# network: the dependencies of both versions.
depends=$( (dpkg-deb -f "$deb" Depends; dpkg-deb -f "$olddeb" Depends) | tr ',' '\n' |
  sed 's/([^)]*)//g; s/|.*//; s/ //g' | grep -v '^$' | sort -u | tr '\n' ' ')
includes=systemd,adduser
recipe=1
key=$(printf '%s\n' bookworm minbase "$mirror" "$includes" "$depends" "$recipe" | sha256sum | cut -c1-16)
cache=${TRADFRI_PACKAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tradfri-bridge}
tarball="$cache/debian12-root-$key.tar.gz"
mkdir -p "$cache"
exec 9>"$tarball.lock"
flock 9
if [ ! -e "$tarball" ]; then
  started=$(date +%s)
  echo "== making the Debian 12 root ($mirror; $depends)"
  fresh="$work/fresh"
  debootstrap --variant=minbase --include="$includes" bookworm "$fresh" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  cp /etc/resolv.conf "$fresh/etc/resolv.conf"
  # shellcheck disable=SC2086
  chroot "$fresh" sh -c "apt-get update -qq && apt-get install -qq --download-only --no-install-recommends $depends" \
    >"$work/download.log" 2>&1 || {
    tail -n 30 "$work/download.log" >&2
    exit 1
  }
  printf '#!/bin/sh\nexit 101\n' >"$fresh/usr/sbin/policy-rc.d"
  chmod +x "$fresh/usr/sbin/policy-rc.d"
  tar -C "$fresh" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$fresh"
  # Older roots of this cache are of no more use.
  find "$cache" -maxdepth 1 -name 'debian12-root-*.tar.gz' ! -name "$(basename "$tarball")" -delete
  echo "== root cached in $(($(date +%s) - started)) s: $tarball ($(du -m "$tarball" | cut -f1) MiB)"
fi
flock -u 9

root=""
new_root() {
  root="$work/root-$1"
  mkdir -p "$root"
  tar -C "$root" -xzf "$tarball"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  cp "$deb" "$root/tmp/new.deb"
  cp "$olddeb" "$root/tmp/old.deb"
}
# Runs a command in the root; apt and dpkg get no terminal and no standard input, as unattended.
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -c "$1" </dev/null; }
apt_install() { in_root "apt-get install -y --no-install-recommends $1"; }
sha() { in_root "sha256sum $1" | cut -d' ' -f1; }
mode() { in_root "stat -c '%a %U:%G' $1"; }

# The gateway simulator from the package, inside the root, on this machine's loopback.
sim_pid=""
start_simulator() {
  in_root "rm -rf /tmp/sim"
  chroot "$root" /usr/bin/tradfri-gateway-sim --listen 127.0.0.1:0 --security-code PACKAGETESTCODE1 \
    --state-dir /tmp/sim </dev/null >"$root/tmp/sim.log" 2>&1 &
  sim_pid=$!
  local deadline=$(($(date +%s) + 20))
  until grep -q "listening on" "$root/tmp/sim.log" 2>/dev/null; do
    if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$sim_pid" 2>/dev/null; then
      cat "$root/tmp/sim.log" >&2
      return 1
    fi
    sleep 0.1
  done
  sim_port=$(grep -o '127\.0\.0\.1:[0-9]*' "$root/tmp/sim.log" | head -n 1 | cut -d: -f2)
}
stop_simulator() {
  if [ -n "$sim_pid" ]; then
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
  fi
}
drop_root() {
  stop_simulator
  umount -R "$root/dev" "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}

# --- a fresh install ---------------------------------------------------------------------------
echo "== fresh install of $version"
new_root fresh
check "apt installs the package and its dependencies" apt_install /tmp/new.deb
check "the tradfri-bridge system user exists" in_root "getent passwd tradfri-bridge | grep -q ':/var/lib/tradfri-bridge:'"
check "/var/lib/tradfri-bridge is 0700 tradfri-bridge" test "$(mode /var/lib/tradfri-bridge)" = "700 tradfri-bridge:tradfri-bridge"
check "the configuration is 0640 root:tradfri-bridge" test "$(mode /etc/tradfri-bridge/config.yaml)" = "640 root:tradfri-bridge"
check "the configuration is the packaged example" test "$(sha /etc/tradfri-bridge/config.yaml)" = "$(sha256sum config/tradfri-bridge.example.yaml | cut -d' ' -f1)"
check "dpkg knows the conffile" in_root "dpkg-query -W -f='\${Conffiles}' tradfri-bridge | grep -q /etc/tradfri-bridge/config.yaml"
check "the service is installed but not enabled" in_root "test -e /lib/systemd/system/tradfri-bridge.service && systemctl is-enabled tradfri-bridge.service | grep -qx disabled"
check "tradfri-bridge runs in a clean root (--help)" in_root "tradfri-bridge --help | grep -q 'Bridges an IKEA'"
check "tradfri-gateway-sim runs in a clean root (--help)" in_root "tradfri-gateway-sim --help | grep -q 'simulator'"
check "systemd-analyze verify finds nothing wrong with the unit" \
  sh -c "out=\$(systemd-analyze verify --man=no --root='$root' tradfri-bridge.service 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
exposure=$(systemd-analyze security --offline=true --root="$root" tradfri-bridge.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for tradfri-bridge.service: \([0-9.]*\).*/\1/p')
echo "        systemd-analyze security: exposure $exposure"
check "systemd-analyze security: exposure ${exposure:-?} is at most 1.6" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 1.6) }'
check "the simulator from the package serves" start_simulator
check "the bridge pairs as its own user (credentials 0600 in /var/lib/tradfri-bridge)" in_root \
  "runuser -u tradfri-bridge -- tradfri-bridge auth --gateway 127.0.0.1:$sim_port --security-code PACKAGETESTCODE1 >/dev/null && stat -c %a /var/lib/tradfri-bridge/credentials.json | grep -qx 600"
check "tradfri-bridge devices reads the gateway with them" in_root "runuser -u tradfri-bridge -- tradfri-bridge devices | grep -q 'Hallway'"
stop_simulator
check "purge straight after install leaves nothing" in_root "apt-get purge -y tradfri-bridge >/dev/null && ! test -e /etc/tradfri-bridge && ! test -e /var/lib/tradfri-bridge && ! getent passwd tradfri-bridge && ! getent group tradfri-bridge"
drop_root

# --- upgrade over 0.1.0, with what a user has ---------------------------------------------------
echo "== upgrade from 0.1.0 to $version, with a changed configuration and a paired bridge"
new_root upgrade
check "apt installs 0.1.0" apt_install /tmp/old.deb
check "0.1.0 made /etc/tradfri-bridge/config.yaml (not a conffile)" in_root "test -e /etc/tradfri-bridge/config.yaml && ! dpkg-query -W -f='\${Conffiles}' tradfri-bridge | grep -q config.yaml"
in_root "sed -i 's/^  level: info/  level: notice/' /etc/tradfri-bridge/config.yaml && echo '# changed by the administrator' >>/etc/tradfri-bridge/config.yaml"
check "the simulator serves" start_simulator
check "the bridge pairs" in_root "runuser -u tradfri-bridge -- tradfri-bridge auth --gateway 127.0.0.1:$sim_port --security-code PACKAGETESTCODE1 >/dev/null"
in_root "printf '%s\n' '[{\"id\":\"heat-pump-nbz1\",\"name\":\"Heat pump\",\"mode\":\"secure\",\"ip\":\"192.0.2.7\",\"username\":\"dev-heat-pump-nbz1\",\"password\":\"x\",\"topicPrefix\":\"devices/heat-pump-nbz1\",\"pairedAt\":\"2026-01-01T10:00:00Z\"}]' >/var/lib/tradfri-bridge/paired-devices.json && chown tradfri-bridge: /var/lib/tradfri-bridge/paired-devices.json && chmod 600 /var/lib/tradfri-bridge/paired-devices.json"
in_root "umask 027 && echo secret-broker-password >/etc/tradfri-bridge/mqtt-password && chgrp tradfri-bridge /etc/tradfri-bridge/mqtt-password"
in_root "systemctl enable tradfri-bridge.service >/dev/null 2>&1"
declare -A before
for file in /etc/tradfri-bridge/config.yaml /var/lib/tradfri-bridge/credentials.json \
  /var/lib/tradfri-bridge/paired-devices.json /etc/tradfri-bridge/mqtt-password; do
  before[$file]="$(sha "$file") $(mode "$file")"
done
check "apt upgrades to $version with standard input closed (no conffile prompt)" apt_install /tmp/new.deb
check "dpkg says $version is installed" in_root "dpkg-query -W -f='\${Version} \${Status}' tradfri-bridge | grep -qx '$version install ok installed'"
for file in "${!before[@]}"; do
  check "kept as it was, mode and owner too: $file" test "$(sha "$file") $(mode "$file")" = "${before[$file]}"
done
check "the configuration is now a conffile" in_root "dpkg-query -W -f='\${Conffiles}' tradfri-bridge | grep -q /etc/tradfri-bridge/config.yaml"
check "nothing left aside" in_root "! ls /etc/tradfri-bridge | grep -q -e dpkg -e keep"
check "the service is still enabled" in_root "systemctl is-enabled tradfri-bridge.service | grep -qx enabled"
check "the kept credentials work with the new binary" in_root "runuser -u tradfri-bridge -- tradfri-bridge devices | grep -q 'Hallway'"
stop_simulator
check "systemd-analyze verify (upgraded)" \
  sh -c "out=\$(systemd-analyze verify --man=no --root='$root' tradfri-bridge.service 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
check "remove: the binaries go" in_root "apt-get remove -y tradfri-bridge >/dev/null && ! test -e /usr/bin/tradfri-bridge && ! test -e /lib/systemd/system/tradfri-bridge.service"
check "remove: dpkg keeps the configuration files" in_root "dpkg-query -W -f='\${Status}' tradfri-bridge | grep -qx 'deinstall ok config-files'"
for file in "${!before[@]}"; do
  check "remove keeps $file" test "$(sha "$file") $(mode "$file")" = "${before[$file]}"
done
check "remove keeps the user" in_root "getent passwd tradfri-bridge >/dev/null"
check "purge" in_root "apt-get purge -y tradfri-bridge >/dev/null"
check "purge: /etc/tradfri-bridge is gone" in_root "! test -e /etc/tradfri-bridge"
check "purge: /var/lib/tradfri-bridge is gone" in_root "! test -e /var/lib/tradfri-bridge"
check "purge: user and group are gone" in_root "! getent passwd tradfri-bridge && ! getent group tradfri-bridge"
check "purge: no statoverride is left" in_root "! dpkg-statoverride --list | grep -q tradfri-bridge"
check "purge: no enablement link is left" in_root "! find /etc/systemd /var/lib/systemd -name 'tradfri-bridge*' | grep -q ."
check "purge: dpkg has forgotten the package" in_root "! dpkg-query -W tradfri-bridge 2>/dev/null"
drop_root

echo "== upgrade from 0.1.0 with the configuration untouched"
new_root untouched
apt_install /tmp/old.deb >/dev/null
check "apt upgrades with standard input closed" apt_install /tmp/new.deb
check "the configuration is the new packaged one" test "$(sha /etc/tradfri-bridge/config.yaml)" = "$(sha256sum config/tradfri-bridge.example.yaml | cut -d' ' -f1)"
check "the configuration is 0640 root:tradfri-bridge" test "$(mode /etc/tradfri-bridge/config.yaml)" = "640 root:tradfri-bridge"
check "reinstalling the same version changes nothing" in_root "apt-get install -y --reinstall /tmp/new.deb >/dev/null && test \"\$(stat -c '%a %U:%G' /etc/tradfri-bridge/config.yaml)\" = '640 root:tradfri-bridge'"
drop_root

echo "package-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
