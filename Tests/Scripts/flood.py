#!/usr/bin/env python3
"""Floods a pairing endpoint: N requests from T threads, as fast as they go, each from a source
address of its own when SOURCES > 1 (127.0.1.1, 127.0.1.2, ... are all this host).
Usage: flood.py URL N THREADS [SOURCES]   Prints a count per HTTP status."""
import collections, http.client, sys, threading, urllib.parse

url, total, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sources = int(sys.argv[4]) if len(sys.argv) > 4 else 1
parts = urllib.parse.urlsplit(url)
counts = collections.Counter()
lock = threading.Lock()

def worker(index, n):
    for i in range(n):
        source = f"127.0.1.{(index * n + i) % sources + 1}" if sources > 1 else "127.0.0.1"
        try:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10,
                                                    source_address=(source, 0))
            connection.request("GET", parts.path)
            status = connection.getresponse().status
            connection.close()
        except Exception:
            status = "error"
        with lock:
            counts[status] += 1

workers = [threading.Thread(target=worker, args=(t, total // threads)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(" ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=str)))
