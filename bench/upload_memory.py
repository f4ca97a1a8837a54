#!/usr/bin/env python3
"""Memory stays bounded under backpressure: a client uploads as fast as it can through Ferry to an
upstream that reads slowly; Ferry's RSS is sampled throughout. A benchmark, not a timed test.

    .venv/bin/python bench/upload_memory.py [--gib 1] [--ferry .build/release/ferry]

The client is h2load (one POST of the whole file); the slow upstream is python-h2 reading at a
capped rate and returning flow-control credit only for what it has read.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import h2.config
import h2.connection
import h2.events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
from netutil import free_port, rss_kib, wait_for_port  # noqa: E402


class SlowUpstream(threading.Thread):
    def __init__(self, bytes_per_second):
        super().__init__(daemon=True)
        self.rate = bytes_per_second
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = 0

    def run(self):
        conn, _ = self.sock.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        conn.sendall(h2c.data_to_send())
        start = time.monotonic()
        while True:
            # Read no faster than the rate allows.
            allowed = start + self.received / self.rate - time.monotonic()
            if allowed > 0:
                time.sleep(allowed)
            data = conn.recv(64 * 1024)
            if not data:
                return
            for event in h2c.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.received += len(event.data)
                    h2c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    h2c.send_headers(event.stream_id, [(":status", "200")], end_stream=True)
            conn.sendall(h2c.data_to_send())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rate-mib", type=float, default=100.0, help="upstream read rate, MiB/s")
    parser.add_argument("--ferry", default=os.path.join(ROOT, ".build", "release", "ferry"))
    args = parser.parse_args()
    size = int(args.gib * 1024 ** 3)

    upstream = SlowUpstream(args.rate_mib * 1024 * 1024)
    upstream.start()
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ferry-bench-")
    config = os.path.join(workdir, "ferry.yaml")
    with open(config, "w") as f:
        f.write(f"listeners:\n  - {{name: in, address: '127.0.0.1:{port}', service: slow}}\n"
                f"services:\n  slow: {{endpoints: ['127.0.0.1:{upstream.port}']}}\n")
    ferry = subprocess.Popen([args.ferry, "run", "-c", config, "--log-level", "warning"])
    wait_for_port(port)
    body = os.path.join(workdir, "upload.bin")
    with open(body, "wb") as f:
        f.truncate(size)   # sparse: the client reads zeros without using disk
    baseline = rss_kib(ferry.pid)
    peak = baseline
    client = subprocess.Popen(["h2load", "-n", "1", "-c", "1", "-d", body, f"http://127.0.0.1:{port}/upload"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    while client.poll() is None:
        peak = max(peak, rss_kib(ferry.pid))
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    output = client.stdout.read()
    ferry.terminate()
    ferry.wait()
    ok = "1 succeeded" in output
    print(f"uploaded {upstream.received / 1024 ** 3:.2f} GiB in {elapsed:.1f} s through Ferry "
          f"(upstream reading at {args.rate_mib:.0f} MiB/s); request {'succeeded' if ok else 'FAILED'}")
    print(f"ferry RSS: baseline {baseline / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
          f"growth {(peak - baseline) / 1024:.1f} MiB (bar: under 64 MiB)")
    return 0 if ok and upstream.received == size else 1


if __name__ == "__main__":
    sys.exit(main())
