#!/bin/sh
# Behaves like EmonESP's src/autoauth.cpp (pairing-and-broker-credentials.md §2):
#   - GET /emoncms/device/auth/request.json on the base station every 10 s (INTERVAL) until the
#     answer is not exactly "request registered";
#   - a 200 answer with exactly 2 colons is USER:PASSWORD:BASETOPIC, with 3 colons
#     USER:PASSWORD:BASETOPIC:PORT (port 1883 otherwise); anything else: keep polling;
#   - then MQTT to the same host with those credentials: publish a measurement to BASETOPIC/power
#     and the node status to BASETOPIC/NODE/out/state.
# Usage: fake-emonesp.sh HOST [HTTP_PORT]      (env: INTERVAL, NODE; CREDENTIALS_FILE: where the test
# reads the credentials from, to check them after a revocation)
host=$1
http_port=${2:-80}
interval=${INTERVAL:-10}
node=${NODE:-emonesp}
while :; do
  body=$(curl -s -o /dev/stdout -w '' --max-time 5 "http://$host:$http_port/emoncms/device/auth/request.json")
  status=$?
  if [ $status -eq 0 ] && [ "$body" != "request registered" ]; then
    colons=$(printf '%s' "$body" | tr -cd ':' | wc -c)
    if [ "$colons" -eq 2 ] || [ "$colons" -eq 3 ]; then
      user=$(printf '%s' "$body" | cut -d: -f1)
      password=$(printf '%s' "$body" | cut -d: -f2)
      topic=$(printf '%s' "$body" | cut -d: -f3)
      port=1883
      [ "$colons" -eq 3 ] && port=$(printf '%s' "$body" | cut -d: -f4)
      echo "emonesp: got credentials for $user, base topic $topic, broker $host:$port"
      [ -n "${CREDENTIALS_FILE:-}" ] && printf '%s\n' "$body" > "$CREDENTIALS_FILE"
      mosquitto_pub -h "$host" -p "$port" -u "$user" -P "$password" -i "$node-$$" -q 1 -t "$topic/power" -m 1234 &&
        mosquitto_pub -h "$host" -p "$port" -u "$user" -P "$password" -i "$node-$$" -q 1 -t "$topic/$node/out/state" -m online &&
        echo "emonesp: published to $topic" || echo "emonesp: MQTT refused"
      exit 0
    fi
    echo "emonesp: ignoring answer: $body"
  else
    echo "emonesp: $body"
  fi
  sleep "$interval"
done
