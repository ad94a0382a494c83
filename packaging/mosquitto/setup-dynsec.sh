#!/usr/bin/env bash
# Creates the broker accounts tradfri-bridge needs in mosquitto's dynamic-security plugin.
# Safe to run again: existing roles and clients are kept (their ACLs are added again).
#
#   setup-dynsec.sh -u ADMIN -P ADMIN_PASSWORD [-h HOST] [-p PORT]
#                   [--bridge-user tradfri-bridge] [--bridge-password-file FILE]
#                   [--pairing-user tradfri-pairing] [--pairing-password-file FILE]
#                   [--base-topic tradfri] [--discovery-prefix homeassistant] [--device-prefix devices]
#
# Password files that do not exist are created with a random password (mode 0600).
# The bridge's account may use <base-topic>/# and <discovery-prefix>/# and read <device-prefix>/#;
# the pairing account may only talk to the dynamic-security plugin. Device accounts are made by the
# bridge itself, each limited to <device-prefix>/<device>/#.
set -euo pipefail

host=127.0.0.1 port=1883 admin="" admin_password=""
bridge_user=tradfri-bridge bridge_file=/etc/tradfri-bridge/mqtt-password
pairing_user=tradfri-pairing pairing_file=/etc/tradfri-bridge/pairing-admin-password
base=tradfri discovery=homeassistant devices=devices
while [ $# -gt 0 ]; do
  case "$1" in
    -h) host=$2; shift 2;;
    -p) port=$2; shift 2;;
    -u) admin=$2; shift 2;;
    -P) admin_password=$2; shift 2;;
    --bridge-user) bridge_user=$2; shift 2;;
    --bridge-password-file) bridge_file=$2; shift 2;;
    --pairing-user) pairing_user=$2; shift 2;;
    --pairing-password-file) pairing_file=$2; shift 2;;
    --base-topic) base=$2; shift 2;;
    --discovery-prefix) discovery=$2; shift 2;;
    --device-prefix) devices=$2; shift 2;;
    *) echo "setup-dynsec: unknown option $1" >&2; exit 2;;
  esac
done
[ -n "$admin" ] || { echo "setup-dynsec: give the dynamic-security admin with -u and -P" >&2; exit 2; }

ctrl() { mosquitto_ctrl -h "$host" -p "$port" -u "$admin" -P "$admin_password" dynsec "$@"; }
quiet() { ctrl "$@" >/dev/null 2>&1 || true; }
password_of() {
  local file=$1
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077; LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 > "$file" || true)
  fi
  head -n 1 "$file"
}

# Check that the admin account works before changing anything.
ctrl listRoles >/dev/null 2>&1 || { echo "setup-dynsec: the admin account cannot manage dynamic security on $host:$port" >&2; exit 1; }

quiet createRole "$bridge_user"
for topic in "$base/#" "$discovery/#"; do
  quiet addRoleACL "$bridge_user" publishClientSend "$topic" allow
  quiet addRoleACL "$bridge_user" publishClientReceive "$topic" allow
  quiet addRoleACL "$bridge_user" subscribePattern "$topic" allow
done
quiet addRoleACL "$bridge_user" publishClientReceive "$devices/#" allow
quiet addRoleACL "$bridge_user" subscribePattern "$devices/#" allow
quiet createClient "$bridge_user" -p "$(password_of "$bridge_file")"
quiet setClientPassword "$bridge_user" "$(password_of "$bridge_file")"
quiet addClientRole "$bridge_user" "$bridge_user"

quiet createRole "$pairing_user"
quiet addRoleACL "$pairing_user" publishClientSend '$CONTROL/dynamic-security/v1' allow
quiet addRoleACL "$pairing_user" publishClientReceive '$CONTROL/dynamic-security/v1/response' allow
quiet addRoleACL "$pairing_user" subscribeLiteral '$CONTROL/dynamic-security/v1/response' allow
quiet createClient "$pairing_user" -p "$(password_of "$pairing_file")"
quiet setClientPassword "$pairing_user" "$(password_of "$pairing_file")"
quiet addClientRole "$pairing_user" "$pairing_user"

ctrl getClient "$bridge_user" >/dev/null 2>&1
ctrl getClient "$pairing_user" >/dev/null 2>&1
echo "broker accounts ready: $bridge_user (password in $bridge_file), $pairing_user (password in $pairing_file)"
