#!/usr/bin/python3
"""Abuses one HTTP(S) endpoint of the bridge the way a broken or hostile LAN client would, while
legitimate clients ask it things; prints one JSON object with what happened.

  http_abuse.py slow URL N [--handshake K] [--interval S] [--legit M] [--body B] [--hold] [--fast-head L]
      N connections each send a request one byte every S seconds (default 0.2); with --fast-head
      the head (announcing a body of L bytes) goes at once and the body crawls. Over HTTPS the
      first K of them crawl through the TLS handshake itself, the others through the request after
      the handshake. Once all are connected, M legitimate requests (default 10) are made one after
      another, each given 3 s. Then it waits (at most 15 s) for the server to close the slow ones.
      With --hold it prints {"connected": N} once they are all connected and keeps crawling until
      killed (for stop tests).
  http_abuse.py malformed URL N [--legit M]
      N connections (20 at a time) each send one malformed request (garbage, bad request lines,
      oversized heads and bodies, bad lengths, binary, TLS garbage) and read what comes back.

URL: http://HOST:PORT/PATH or https://HOST:PORT/PATH; a legitimate request is a GET, or a POST of
--body when one is given.
"""
import argparse
import concurrent.futures
import http.client
import json
import random
import select
import socket
import ssl
import sys
import threading
import time
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["slow", "malformed"])
parser.add_argument("url")
parser.add_argument("count", type=int)
parser.add_argument("--handshake", type=int, default=0)
parser.add_argument("--interval", type=float, default=0.2)
parser.add_argument("--legit", type=int, default=10)
parser.add_argument("--body", default=None)
parser.add_argument("--hold", action="store_true")
parser.add_argument("--fast-head", type=int, default=0)
arguments = parser.parse_args()

target = urllib.parse.urlsplit(arguments.url)
host, port, path = target.hostname, target.port, target.path or "/"
secure = target.scheme == "https"
insecure = ssl.create_default_context()
insecure.check_hostname = False
insecure.verify_mode = ssl.CERT_NONE
method = "POST" if arguments.body is not None else "GET"
request = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(arguments.body or '')}\r\n\r\n{arguments.body or ''}").encode()


def client_hello():
    """The bytes of a TLS ClientHello, to send one at a time over a plain socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = insecure.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def legitimate():
    """One request as a device makes it; (status or error, seconds)."""
    started = time.monotonic()
    try:
        if secure:
            connection = http.client.HTTPSConnection(host, port, timeout=3, context=insecure)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=3)
        connection.request(method, path, body=arguments.body,
                           headers={"Content-Type": "application/json"} if arguments.body else {})
        status = connection.getresponse().status
        connection.close()
    except Exception as error:
        status = type(error).__name__
    return status, round(time.monotonic() - started, 3)


def slow_payload():
    """What a crawler sends, and how much of it goes at once."""
    if not arguments.fast_head:
        return request, 0
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {arguments.fast_head}\r\n\r\n").encode()
    return head + b"x" * arguments.fast_head, len(head)


def slow():
    connected = threading.Semaphore(0)
    lock = threading.Lock()
    closed_after = []
    failed_to_connect = []
    stop = threading.Event()
    hello = client_hello() if secure else b""

    def crawler(index):
        started = time.monotonic()
        try:
            raw = socket.create_connection((host, port), timeout=10)
            payload, at_once = slow_payload()
            if secure and index >= arguments.handshake:
                stream = insecure.wrap_socket(raw, server_hostname=host)
            elif secure:
                stream, payload, at_once = raw, hello, 0
            else:
                stream = raw
            stream.sendall(payload[:at_once])
            stream.setblocking(False)
        except Exception as error:
            with lock:
                failed_to_connect.append(type(error).__name__)
            connected.release()
            return
        connected.release()
        offset = at_once
        while not stop.is_set():
            readable, _, _ = select.select([stream], [], [], arguments.interval)
            if readable:
                try:
                    data = stream.recv(4096)
                except ssl.SSLWantReadError:
                    continue
                except Exception:
                    data = b""
                if not data:
                    with lock:
                        closed_after.append(time.monotonic() - started)
                    return
                continue
            try:
                stream.send(payload[offset % len(payload):offset % len(payload) + 1])
                offset += 1
            except (BlockingIOError, ssl.SSLWantWriteError):
                pass
            except Exception:
                with lock:
                    closed_after.append(time.monotonic() - started)
                return
        stream.close()

    threads = [threading.Thread(target=crawler, args=(i,), daemon=True) for i in range(arguments.count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        connected.acquire()
    if arguments.hold:
        print(json.dumps({"connected": arguments.count - len(failed_to_connect)}), flush=True)
        stop.wait()
    answers = [legitimate() for _ in range(arguments.legit)]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(thread.is_alive() for thread in threads):
        time.sleep(0.1)
    stop.set()
    closed_after.sort()
    return {
        "slow": arguments.count, "connected": arguments.count - len(failed_to_connect),
        "connect_failures": failed_to_connect[:5],
        "closed_by_server": len(closed_after),
        "closed_after_median": round(closed_after[len(closed_after) // 2], 2) if closed_after else None,
        "closed_after_max": round(closed_after[-1], 2) if closed_after else None,
        "legit": [status for status, _ in answers], "legit_seconds": [seconds for _, seconds in answers],
    }


def malformed_requests():
    generator = random.Random(7)
    target_line = f"{path} HTTP/1.1\r\nHost: {host}\r\n"
    fixed = [
        b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\x03\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        f"POST {target_line}Content-Length: -5\r\n\r\n".encode(),
        f"POST {target_line}Content-Length: 99999999999999999999\r\n\r\n".encode(),
        f"POST {target_line}Content-Length: 100000\r\n\r\n".encode() + b"x" * 9000,
        f"POST {target_line}Transfer-Encoding: chunked\r\n\r\nzz\r\ngarbage\r\n".encode(),
        f"GET {target_line}X: {'a' * 20000}\r\n\r\n".encode(),
        f"GET {target_line}".encode() + b"".join(f"X-{i}: {i}\r\n".encode() for i in range(300)) + b"\r\n",
        "GET /ünïcödé HTTP/1.1\r\nHost: ☃\r\n\r\n".encode(), b"\x16\x03\x01\x02\x00" + bytes(600),
        f"GET {path}?{'&' * 3000}=%%%00 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"POST {target_line}Content-Length: 20\r\n\r\n{{\"name\": \"\\u0000\\ud800\"}}".encode(),
    ]
    requests = []
    for index in range(arguments.count):
        if index % 3 == 0:
            requests.append(bytes(generator.randrange(256) for _ in range(generator.randrange(1, 2000))))
        else:
            requests.append(fixed[index % len(fixed)])
    return requests


def send_malformed(data):
    try:
        raw = socket.create_connection((host, port), timeout=3)
        stream = insecure.wrap_socket(raw, server_hostname=host) if secure and data[:1] != b"\x16" else raw
        stream.sendall(data)
        answer = stream.recv(64)
        stream.close()
        return answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/1.1 ") else ("closed" if not answer else "other")
    except Exception as error:
        return type(error).__name__


def malformed():
    counts = {}
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        for outcome in pool.map(send_malformed, malformed_requests()):
            counts[outcome] = counts.get(outcome, 0) + 1
    seconds = round(time.monotonic() - started, 1)
    answers = [legitimate() for _ in range(arguments.legit)]
    return {"malformed": arguments.count, "outcomes": counts, "seconds": seconds,
            "legit": [status for status, _ in answers], "legit_seconds": [seconds for _, seconds in answers]}


print(json.dumps(slow() if arguments.mode == "slow" else malformed()), flush=True)
sys.exit(0)
