#!/usr/bin/env python3
"""Instructions and malloc calls per proxied call: the noise-free figures.

    .venv/bin/python bench/callgrind_per_call.py [--calls 20000] [--ferry .build/release/ferry]

Ferry (1 event loop, debug info stripped: valgrind 3.19 cannot read Swift's DWARF 5) runs
under `valgrind --tool=callgrind --instr-atstart=no` in front of nghttpd answering 100-byte
gRPC-shaped responses with `grpc-status: 0` trailers. After a warm-up of 2,000 calls,
instrumentation goes on (`callgrind_control -i on`), h2load makes `--calls` calls at 10
connections x 10 streams, instrumentation goes off, and the totals are divided by the calls.
The same method as docs/ARCHITECTURE.md's "Measuring the hot path"; compare two builds by
running this on each. Then the same binary without valgrind, with bench/malloc_count.c
preloaded, counts malloc calls over the same number of calls (SIGUSR1 prints the count).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from harness import REQUEST, RESPONSE, ferry_config  # noqa: E402
from netutil import free_port, wait_for_port  # noqa: E402


def h2load(port, workdir, calls):
    subprocess.run(["h2load", "-c", "10", "-m", "10", "-n", str(calls), "-d", os.path.join(workdir, "request"),
                    "-H", "content-type: application/grpc", "-H", "te: trailers", f"http://127.0.0.1:{port}/echo"],
                   check=True, capture_output=True)


def start_nghttpd(workdir, port):
    """nghttpd answering every request with the 100-byte response in `workdir`/echo and grpc-status 0."""
    nghttpd = subprocess.Popen(["nghttpd", "--no-tls", "-d", workdir, "--trailer", "grpc-status: 0", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return nghttpd


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--ferry", default=os.path.join(ROOT, ".build", "release", "ferry"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="ferry-callgrind-")
    for name, data in (("echo", RESPONSE), ("request", REQUEST)):
        with open(os.path.join(workdir, name), "wb") as f:
            f.write(data)
    binary = os.path.join(workdir, "ferry")
    shutil.copy(args.ferry, binary)
    subprocess.run(["strip", "--strip-debug", binary], check=True)
    upstream, port = free_port(), free_port()
    nghttpd = start_nghttpd(workdir, upstream)
    config = ferry_config(workdir, "ferry", port, upstream, 1)
    out = os.path.join(workdir, "callgrind.out")
    ferry = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                              binary, "run", "-c", config, "--log-level", "error"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=120)
        h2load(port, workdir, 2_000)
        subprocess.run(["callgrind_control", "-i", "on", str(ferry.pid)], check=True, capture_output=True)
        h2load(port, workdir, args.calls)
        subprocess.run(["callgrind_control", "-i", "off", str(ferry.pid)], check=True, capture_output=True)
    finally:
        ferry.terminate()
        ferry.wait(120)
        nghttpd.terminate()
        nghttpd.wait(10)
    files = sorted(glob.glob(out + "*"))
    annotate = subprocess.run(["callgrind_annotate", "--threshold=100"] + files, capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotate).group(1).replace(",", ""))
    print(f"{args.calls} calls: {total / args.calls:,.0f} instructions per call (program total {total:,})")
    print(f"malloc calls per call: {mallocs_per_call(args, workdir, binary):.2f}")


def mallocs_per_call(args, workdir, binary):
    counter = os.path.join(workdir, "malloc_count.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", counter, os.path.join(ROOT, "bench", "malloc_count.c"), "-ldl"], check=True)
    upstream, port = free_port(), free_port()
    nghttpd = start_nghttpd(workdir, upstream)
    err = os.path.join(workdir, "count.err")
    ferry = subprocess.Popen([binary, "run", "-c", ferry_config(workdir, "count", port, upstream, 1), "--log-level", "error"],
                             stdout=subprocess.DEVNULL, stderr=open(err, "w"), env=dict(os.environ, LD_PRELOAD=counter))
    try:
        wait_for_port(port)
        h2load(port, workdir, 2_000)
        counts = []
        for calls in (0, args.calls):
            if calls:
                h2load(port, workdir, calls)
            ferry.send_signal(10)
            time.sleep(0.5)
            with open(err) as f:
                counts.append(int(re.findall(r"ALLOCS (\d+)", f.read())[-1]))
        return (counts[1] - counts[0]) / args.calls
    finally:
        ferry.terminate()
        ferry.wait(10)
        nghttpd.terminate()
        nghttpd.wait(10)


if __name__ == "__main__":
    main()
