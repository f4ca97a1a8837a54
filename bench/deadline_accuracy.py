#!/usr/bin/env python3
"""How exactly Ferry ends calls at their deadline, under load. A benchmark, not a test.

    .venv/bin/python bench/deadline_accuracy.py [--calls 2000] [--concurrency 1000] [--timeout-ms 100]

h2load sends gRPC-shaped calls carrying `grpc-timeout` through Ferry to an upstream that never
answers, `--concurrency` of them in flight at once; Ferry alone ends each with DEADLINE_EXCEEDED.
The upstream is a black hole that sends its SETTINGS and then reads and drops every byte, so it
takes next to no CPU from the two that matter here (`--upstream h2` uses the python-h2 peer). From h2load's --log-file: lateness = (time the client saw the answer)
- (the deadline). The client's clock starts before Ferry's, so lateness includes the request's
way in: it is an upper bound on Ferry's own error.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
from h2_upstream import H2Upstream  # noqa: E402
from netutil import free_port, wait_for_port  # noqa: E402
from processes import BlackHole  # noqa: E402


def report(label, lateness):
    lateness = sorted(lateness)
    if not lateness:
        return
    pct = lambda p: lateness[min(len(lateness) - 1, int(len(lateness) * p))]
    print(f"lateness past the deadline, {label} ({len(lateness)}) in ms: min {lateness[0]:.2f}  p50 {pct(0.5):.2f}  "
          f"p90 {pct(0.9):.2f}  p99 {pct(0.99):.2f}  max {lateness[-1]:.2f}  (target: p99 under 5 ms)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--timeout-ms", type=int, default=100)
    parser.add_argument("--ferry", default=os.path.join(ROOT, ".build", "release", "ferry"))
    parser.add_argument("--upstream", choices=["blackhole", "h2"], default="blackhole")
    parser.add_argument("--event-loops", type=int, default=2)
    args = parser.parse_args()

    upstream = BlackHole() if args.upstream == "blackhole" else H2Upstream()
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ferry-deadline-")
    config = os.path.join(workdir, "ferry.yaml")
    with open(config, "w") as f:
        f.write(f"runtime: {{event_loops: {args.event_loops}}}\nlisteners:\n  - {{name: in, address: '127.0.0.1:{port}', service: hang}}\n"
                f"services:\n  hang:\n    endpoints: ['127.0.0.1:{upstream.port}']\n    max_pending_calls: 100000\n")
    ferry = subprocess.Popen([args.ferry, "run", "-c", config, "--log-level", "error"])
    try:
        wait_for_port(port)
        clients = 10
        log = os.path.join(workdir, "h2load.log")
        out = subprocess.run(["h2load", "-n", str(args.calls), "-c", str(clients), "-m", str(args.concurrency // clients),
                              "--log-file", log, "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "-H", f"grpc-timeout: {args.timeout_ms}m", f"http://127.0.0.1:{port}/hang"],
                             capture_output=True, text=True, timeout=600).stdout
        done = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
        calls = []                       # (start time us, ms past the deadline)
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    calls.append((int(parts[0]), int(parts[2]) / 1000 - args.timeout_ms))
        calls.sort()
        print(f"{len(calls)} calls with a {args.timeout_ms} ms grpc-timeout, {args.concurrency} in flight "
              f"({os.cpu_count()} cores, Ferry on {args.event_loops} event loops); "
              f"h2load: {done.group(0) if done else out[-300:]}")
        # The first wave meets cold connections on every side (h2load's, Ferry's accept and its
        # first upstream connection); it is reported apart from the steady state that follows.
        first = calls[0][0] if calls else 0
        report("all calls", [late for _, late in calls])
        report("after the first wave", [late for t, late in calls if t - first >= args.timeout_ms * 1000])
        early = sum(1 for _, late in calls if late < 0)
        print(f"answered before the deadline: {early}")
    finally:
        ferry.terminate()
        ferry.wait()
        upstream.stop()


if __name__ == "__main__":
    main()
