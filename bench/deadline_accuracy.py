#!/usr/bin/env python3
"""How exactly Ferry ends calls at their deadline, under load. A benchmark, not a test.

    .venv/bin/python bench/deadline_accuracy.py [--calls 2000] [--concurrency 1000] [--timeout-ms 100]

h2load sends gRPC-shaped calls carrying `grpc-timeout` through Ferry to an upstream that never
answers (python-h2, `/hang`), `--concurrency` of them in flight at once; Ferry alone ends each
with DEADLINE_EXCEEDED. From h2load's --log-file: lateness = (time the client saw the answer)
- (the deadline). The client's clock starts before Ferry's, so lateness includes the request's
way in: it is an upper bound on Ferry's own error.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
from h2_upstream import H2Upstream  # noqa: E402
from netutil import free_port, wait_for_port  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--timeout-ms", type=int, default=100)
    parser.add_argument("--ferry", default=os.path.join(ROOT, ".build", "release", "ferry"))
    args = parser.parse_args()

    upstream = H2Upstream()
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ferry-deadline-")
    config = os.path.join(workdir, "ferry.yaml")
    with open(config, "w") as f:
        f.write(f"listeners:\n  - {{name: in, address: '127.0.0.1:{port}', service: hang}}\n"
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
        lateness = []
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lateness.append(int(parts[2]) / 1000 - args.timeout_ms)   # ms past the deadline
        lateness.sort()
        pct = lambda p: lateness[min(len(lateness) - 1, int(len(lateness) * p))]
        print(f"{len(lateness)} calls with a {args.timeout_ms} ms grpc-timeout, {args.concurrency} in flight "
              f"({os.cpu_count()} cores); h2load: {done.group(0) if done else out[-300:]}")
        print(f"lateness past the deadline (ms): min {lateness[0]:.2f}  p50 {pct(0.5):.2f}  p90 {pct(0.9):.2f}  "
              f"p99 {pct(0.99):.2f}  max {lateness[-1]:.2f}  (target: p99 under 5 ms)")
        early = sum(1 for x in lateness if x < 0)
        print(f"answered before the deadline: {early}")
    finally:
        ferry.terminate()
        ferry.wait()
        upstream.stop()


if __name__ == "__main__":
    main()
