#!/usr/bin/env python3
"""Ferry beside nghttpx in front of the same nghttpd, measured in one run with h2load.

    .venv/bin/python bench/compare_h2load.py [--requests 200000] [--reps 3]

For each target (direct, Ferry, nghttpx with one worker) and each repetition: h2load sends
100-byte gRPC-shaped POSTs (content-type application/grpc, te: trailers) at 10 connections x
10 streams; req/s from h2load's summary, p50/p99 from its --log-file. Prints a Markdown table
of medians and the Ferry/nghttpx throughput ratio. (The full harness with haproxy, fixed-rate
latency and memory is bench work of its own; this script is the core's yardstick.)
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
from netutil import free_port, wait_for_port  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def h2load(port, requests, workdir):
    """req/s, p50, p99 (us) and failures of one h2load run at 10 connections x 10 streams."""
    r = harness.h2load(port, workdir, requests=requests)
    return r["rps"], r["p50"], r["p99"], r["failed"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ferry", default=os.path.join(ROOT, ".build", "release", "ferry"))
    parser.add_argument("--event-loops", type=int, default=2)
    args = parser.parse_args()
    for tool in ("h2load", "nghttpd", "nghttpx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/setup test")

    workdir = tempfile.mkdtemp(prefix="ferry-bench-")
    with open(os.path.join(workdir, "echo"), "wb") as f:
        f.write(b"\x00\x00\x00\x00\x5f" + b"r" * 95)
    body = os.path.join(workdir, "request")     # the name harness.h2load sends
    with open(body, "wb") as f:
        f.write(b"\x00\x00\x00\x00\x5f" + b"q" * 95)

    upstream, ferry_port, nghttpx_port = free_port(), free_port(), free_port()
    metered_port, admin_port = free_port(), free_port()
    procs = [subprocess.Popen(["nghttpd", "--no-tls", "-d", workdir, "--trailer", "grpc-status: 0", str(upstream)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    config = os.path.join(workdir, "ferry.yaml")
    with open(config, "w") as f:
        f.write(f"runtime: {{event_loops: {args.event_loops}}}\n"
                f"listeners:\n  - {{name: bench, address: '127.0.0.1:{ferry_port}', service: up}}\n"
                f"services:\n  up: {{endpoints: ['127.0.0.1:{upstream}']}}\n")
    procs.append(subprocess.Popen([args.ferry, "run", "-c", config, "--log-level", "error"]))
    # The same Ferry with the admin server and metrics on: the cost of counting.
    metered = os.path.join(workdir, "ferry-metrics.yaml")
    with open(metered, "w") as f:
        f.write(f"admin: {{address: '127.0.0.1:{admin_port}', metrics: true}}\n"
                f"runtime: {{event_loops: {args.event_loops}}}\n"
                f"listeners:\n  - {{name: bench, address: '127.0.0.1:{metered_port}', service: up}}\n"
                f"services:\n  up: {{endpoints: ['127.0.0.1:{upstream}']}}\n")
    procs.append(subprocess.Popen([args.ferry, "run", "-c", metered, "--log-level", "error"]))
    procs.append(subprocess.Popen(["nghttpx", f"--frontend=127.0.0.1,{nghttpx_port};no-tls",
                                   f"--backend=127.0.0.1,{upstream};;proto=h2", "--workers=1",
                                   f"--errorlog-file={workdir}/nghttpx.err", "--conf=/dev/null"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        for port in (upstream, ferry_port, nghttpx_port, metered_port):
            wait_for_port(port)
        targets = [("direct", upstream), (f"ferry ({args.event_loops} loops)", ferry_port),
                   (f"ferry ({args.event_loops} loops, metrics on)", metered_port), ("nghttpx (1 worker)", nghttpx_port)]
        samples = {name: [] for name, _ in targets}
        for _ in range(args.reps):
            for name, port in targets:   # interleaved, so drift hits every target alike
                samples[name].append(h2load(port, args.requests, workdir))
        print(f"| target | req/s | p50 (us) | p99 (us) | failed |   ({os.cpu_count()} cores, {args.requests} req x {args.reps}, medians)")
        print("| --- | --- | --- | --- | --- |")
        med = {}
        for name, _ in targets:
            rows = samples[name]
            med[name] = [statistics.median(r[i] for r in rows) for i in range(4)]
            rps, p50, p99, failed = med[name]
            print(f"| {name} | {rps:.0f} | {p50:.0f} | {p99:.0f} | {failed:.0f} |")
        ferry, nghttpx = med[targets[1][0]], med["nghttpx (1 worker)"]
        metered_med = med[targets[2][0]]
        print(f"\nthroughput ferry/nghttpx: {ferry[0] / nghttpx[0]:.2f}; "
              f"added p50 vs direct: ferry {ferry[1] - med['direct'][1]:.0f} us, nghttpx {nghttpx[1] - med['direct'][1]:.0f} us; "
              f"metrics on cost {(1 - metered_med[0] / ferry[0]) * 100:.1f}% of throughput")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
