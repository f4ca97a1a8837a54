"""gRPC interop cases, direct and through Ferry, with two independent clients (grpcio and
grpc-swift-2) against a grpcio interop server. Prints the case x path x client table (also
written to Tests/interop/results/INTEROP.md) and fails on any failure.

The grpc-swift-2 client is built by scripts/test (Tests/InteropSwift); point
SWIFT_INTEROP_CLIENT at another binary if needed.
"""
import os
import subprocess
import sys
import time

import grpc
import pytest

from conftest import HERE, ROOT, free_port, wait_for_port

import interop_cases

SWIFT_CLIENT = os.environ.get("SWIFT_INTEROP_CLIENT") or os.path.join(
    ROOT, "Tests", "InteropSwift", ".build", "release", "InteropClientSwift")
OPTIONS = [("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20),
           ("grpc.enable_retries", 0)]


@pytest.fixture(scope="module")
def interop_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "peers", "interop_server.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield port
    proc.terminate()
    proc.wait()


def run_python(target, name):
    start = time.monotonic()
    try:
        interop_cases.CASES[name](lambda: grpc.insecure_channel(target, options=OPTIONS))
        return "pass", time.monotonic() - start, ""
    except Exception as e:  # a case failing in any way is a failure to report
        detail = f"{type(e).__name__}: {e}".replace("\n", " ")[:200]
        return "FAIL", time.monotonic() - start, detail


def run_swift(port):
    out = subprocess.run([SWIFT_CLIENT, "--port", str(port)], capture_output=True, text=True, timeout=600)
    results = {}
    for line in out.stdout.splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[0] in ("PASS", "FAIL"):
            results[parts[1]] = ("pass" if parts[0] == "PASS" else "FAIL", parts[2], parts[3] if len(parts) > 3 else "")
    return results, out.stdout + out.stderr


def test_interop_matrix(interop_server, ferry_factory, capsys):
    assert os.path.exists(SWIFT_CLIENT), f"grpc-swift-2 interop client not built at {SWIFT_CLIENT} (scripts/test builds it)"
    ferry = ferry_factory([interop_server])
    paths = {"direct": (f"127.0.0.1:{interop_server}", interop_server), "ferry": (ferry.target, ferry.port)}
    rows = []
    for path, (target, _) in paths.items():
        for name in interop_cases.CASES:
            status, seconds, detail = run_python(target, name)
            rows.append((name, path, "grpcio", status, f"{seconds:.2f}s", detail))
    swift_logs = {}
    for path, (_, port) in paths.items():
        results, log = run_swift(port)
        swift_logs[path] = log
        for name in interop_cases.CASES:
            status, seconds, detail = results.get(name, ("FAIL", "-", "case did not run"))
            rows.append((name, path, "grpc-swift-2", status, seconds, detail))

    order = {name: i for i, name in enumerate(interop_cases.CASES)}
    rows.sort(key=lambda r: (order[r[0]], r[2], r[1]))
    lines = ["| case | path | client | result | time | error |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    failed = [r for r in rows if r[3] != "pass"]
    lines.append(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    table = "\n".join(lines)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "INTEROP.md"), "w") as f:
        f.write(table + "\n")
    with capsys.disabled():
        print("\n" + table)
    assert not failed, "interop failures:\n" + "\n".join(" ".join(r) for r in failed) + "\n" + swift_logs.get("ferry", "")
