#!/usr/bin/env bash
# Builds dist/tradfri-bridge_<version>_<arch>.deb (and tradfri-bridge-dbgsym_…, the debug symbols):
# release binaries with the Swift standard library linked statically (the C libraries stay shared:
# libcoap3, libmosquitto1, libavahi-client3, libssl3), their man pages, and packaging/debian/ run
# through debhelper (strip, dpkg-shlibdeps, conffiles, systemd unit, maintainer scripts).
# Needs debhelper (scripts/install-dependencies.sh installs it).
#   packaging/build-deb.sh            prints the path of the .deb on its last line
set -euo pipefail
cd "$(dirname "$0")/.."

upstream=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/TradfriBridge/BridgeVersion.swift)
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "${version%-*}" != "$upstream" ]; then
  echo "build-deb: packaging/debian/changelog is at $version but the bridge is $upstream: add a changelog entry" >&2
  exit 1
fi
arch=$(dpkg --print-architecture)

swift build -c release --static-swift-stdlib --product tradfri-bridge >&2
swift build -c release --static-swift-stdlib --product tradfri-gateway-sim >&2
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)
# swift-argument-parser's man page generator (its generate-manual plugin builds every product in
# release mode first; the tool alone is enough, run on the binaries that ship).
swift build --product generate-manual >&2
generate_manual="$(swift build --show-bin-path)/generate-manual"

# Every Swift package linked into the binaries must be named in the copyright file.
for checkout in .build/checkouts/*/; do
  name=$(basename "$checkout")
  if ! grep -q "^ *\(Files: \)\?\.build/checkouts/$name/\*" packaging/debian/copyright; then
    echo "build-deb: the Swift package $name is linked in but packaging/debian/copyright does not name it" >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tradfri-bridge-$upstream"
mkdir -p "$tree/build" "$tree/man"
cp -a packaging/debian "$tree/debian"
cp packaging/systemd/tradfri-bridge.service "$tree/debian/tradfri-bridge.service"
cp README.md "$tree/README.md"
stage="$tree/build"
install -D -m 0755 "$bin/tradfri-bridge" "$stage/usr/bin/tradfri-bridge"
install -D -m 0755 "$bin/tradfri-gateway-sim" "$stage/usr/bin/tradfri-gateway-sim"
install -D -m 0644 config/tradfri-bridge.example.yaml "$stage/etc/tradfri-bridge/config.yaml"
install -D -m 0644 config/tradfri-bridge.example.yaml "$stage/usr/share/tradfri-bridge/config.example.yaml"
install -D -m 0644 packaging/mosquitto/tradfri-bridge-dynsec.conf \
  "$stage/usr/share/tradfri-bridge/mosquitto/tradfri-bridge-dynsec.conf"
install -D -m 0755 packaging/mosquitto/setup-dynsec.sh "$stage/usr/share/tradfri-bridge/mosquitto/setup-dynsec.sh"

# Man pages from the shipped binaries' own help (--experimental-dump-help). generate-manual drops
# characters outside ASCII ("TRÅDFRI" would read "TRDFRI"): they pass through it as placeholders
# and become roff escapes after.
date=$(date -u -d "$(dpkg-parsechangelog -l packaging/debian/changelog -S Date)" +%Y-%m-%d)
for tool in tradfri-bridge tradfri-gateway-sim; do
  cat >"$work/$tool" <<EOF
#!/bin/sh
"$stage/usr/bin/$tool" "\$@" | perl -CSD -pe 's/([^\x00-\x7F])/sprintf("UNICODE%04XEND", ord(\$1))/ge'
EOF
  chmod +x "$work/$tool"
  "$generate_manual" "$work/$tool" --date "$date" --authors "tradfri-bridge developers<dev@tradfri-bridge.invalid>" \
    --output-directory "$tree/man" >&2
  # Blank lines in the help text become paragraph breaks (a blank line is a warning in mdoc).
  perl -pi -e 's/UNICODE([0-9A-F]{4})END/\\[u$1]/g; s/^$/.Pp/' "$tree/man/$tool.1"
done

(cd "$tree" && dpkg-buildpackage --build=binary --no-sign >&2)
mkdir -p dist
deb="dist/tradfri-bridge_${version}_${arch}.deb"
cp "$work/tradfri-bridge_${version}_${arch}.deb" "$work/tradfri-bridge-dbgsym_${version}_${arch}.deb" \
  "$work/tradfri-bridge_${version}_${arch}.changes" "$work/tradfri-bridge_${version}_${arch}.buildinfo" dist/
echo "$deb"
