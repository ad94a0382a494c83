#!/usr/bin/env bash
# Builds dist/tradfri-bridge_<version>_<arch>.deb: release binaries with the Swift standard library
# linked statically (the C libraries stay shared: libcoap3, libmosquitto1, libavahi-client3).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/TradfriBridge/BridgeVersion.swift)
arch=$(dpkg --print-architecture)
swift build -c release --static-swift-stdlib --product tradfri-bridge
swift build -c release --static-swift-stdlib --product tradfri-gateway-sim
bin=$(swift build -c release --show-bin-path)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin/tradfri-bridge" "$stage/usr/bin/tradfri-bridge"
install -D -m 0755 "$bin/tradfri-gateway-sim" "$stage/usr/bin/tradfri-gateway-sim"
install -D -m 0644 packaging/systemd/tradfri-bridge.service "$stage/lib/systemd/system/tradfri-bridge.service"
install -D -m 0644 config/tradfri-bridge.example.yaml "$stage/usr/share/tradfri-bridge/config.example.yaml"
install -D -m 0644 packaging/mosquitto/tradfri-bridge-dynsec.conf "$stage/usr/share/tradfri-bridge/mosquitto/tradfri-bridge-dynsec.conf"
install -D -m 0755 packaging/mosquitto/setup-dynsec.sh "$stage/usr/share/tradfri-bridge/mosquitto/setup-dynsec.sh"
install -D -m 0644 README.md "$stage/usr/share/doc/tradfri-bridge/README.md"
install -d -m 0755 "$stage/etc/tradfri-bridge"
install -d "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/debian/control.in > "$stage/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/postrm packaging/debian/prerm "$stage/DEBIAN/"
mkdir -p dist
dpkg-deb --root-owner-group --build "$stage" "dist/tradfri-bridge_${version}_${arch}.deb"
echo "dist/tradfri-bridge_${version}_${arch}.deb"
