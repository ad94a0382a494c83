#!/usr/bin/env python3
"""A client of Home Assistant's own APIs for the integration test, standard library only.

  ha-client.py onboard URL                     creates the owner (onboarding REST API), prints an access token
  ha-client.py flow URL TOKEN HANDLER JSON...  starts a config flow and answers each step with the next JSON
  ha-client.py websocket URL TOKEN             relays the websocket API: one JSON command per line on
                                               standard input, every message received as one JSON line
                                               on standard output

Nothing here interprets what Home Assistant says: the test does (HomeAssistantCoreTests.swift).
"""

import base64
import json
import os
import socket
import struct
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request


def http(url, data=None, token=None, form=False):
    headers = {}
    body = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        sys.exit(f"{url} {json.dumps(data)}: {error.code} {error.read().decode(errors='replace')}")


def onboard(base):
    client = base + "/"
    owner = http(
        base + "/api/onboarding/users",
        {"client_id": client, "name": "Test", "username": "test", "password": "test-password", "language": "en"},
    )
    tokens = http(
        base + "/auth/token",
        {"grant_type": "authorization_code", "code": owner["auth_code"], "client_id": client},
        form=True,
    )
    print(tokens["access_token"], flush=True)


def fill(schema, answer):
    """What the UI sends for a form: the given answer, and every other required field at its
    default (booleans off, a select at its first option), sections ("expandable") included."""
    values = dict(answer)
    for field in schema:
        name = field["name"]
        if field.get("type") == "expandable":
            values[name] = fill(field["schema"], values.get(name, {}))
        elif name not in values and field.get("required"):
            selector = field.get("selector", {})
            if "default" in field and field["default"] is not None:
                values[name] = field["default"]
            elif "boolean" in selector:
                values[name] = False
            elif "select" in selector and selector["select"].get("options"):
                option = selector["select"]["options"][0]
                values[name] = option["value"] if isinstance(option, dict) else option
    return values


def flow(base, token, handler, answers):
    step = http(base + "/api/config/config_entries/flow", {"handler": handler}, token)
    for answer in answers:
        print(json.dumps(step), flush=True)
        if step.get("type") != "form":
            break
        values = fill(step.get("data_schema") or [], json.loads(answer))
        step = http(base + "/api/config/config_entries/flow/" + step["flow_id"], values, token)
    print(json.dumps(step), flush=True)
    sys.exit(0 if step.get("type") == "create_entry" else 1)


class WebSocket:
    """RFC 6455, client side: masked frames out, ping answered, fragments joined."""

    def __init__(self, url):
        parts = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=None)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self.lock = threading.Lock()

    def _read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, opcode, payload):
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(header + mask + masked)

    def receive(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0x8:
                raise EOFError
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return message.decode()


def websocket(base, token):
    ws = WebSocket(base.replace("http://", "ws://") + "/api/websocket")
    hello = json.loads(ws.receive())
    if hello.get("type") != "auth_required":
        raise ConnectionError(hello)
    ws.send(0x1, json.dumps({"type": "auth", "access_token": token}).encode())
    auth = ws.receive()
    print(auth, flush=True)
    if json.loads(auth).get("type") != "auth_ok":
        sys.exit(1)

    def relay():
        for line in sys.stdin:
            if line.strip():
                ws.send(0x1, line.strip().encode())
        os._exit(0)

    threading.Thread(target=relay, daemon=True).start()
    try:
        while True:
            message = json.loads(ws.receive())
            # Home Assistant may coalesce several messages into one JSON array.
            for item in message if isinstance(message, list) else [message]:
                print(json.dumps(item, separators=(",", ":")), flush=True)
    except (EOFError, ConnectionError, OSError):
        print(json.dumps({"type": "closed"}), flush=True)


if __name__ == "__main__":
    command, base = sys.argv[1], sys.argv[2].rstrip("/")
    if command == "onboard":
        onboard(base)
    elif command == "flow":
        flow(base, sys.argv[3], sys.argv[4], sys.argv[5:])
    elif command == "websocket":
        websocket(base, sys.argv[3])
    else:
        sys.exit("unknown command " + command)
