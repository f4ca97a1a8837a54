#!/usr/bin/env python3
"""An xDS update of 10,000 endpoints, Ferry beside Envoy, driven by the same control plane.

    .venv/bin/python bench/xds_update.py [--endpoints 10000] [--reps 3] [--ferry .build/release/ferry]

The control plane is the tests' ADS server (Tests/interop/peers/ads_server.py). One cluster
starts with one endpoint (upstream "alpha"); the update replaces it with N endpoints, all of
them upstream "beta" (one grpcio server bound to 0.0.0.0, reached at N different loopback
addresses 127.0.x.y). Meanwhile 4 grpcio callers call through the proxy back to back.
Reported, for each proxy:

  - update -> routing: from the server queueing the response to the first call answered by beta;
  - calls failed during the run, and p99 latency in the 2 s after the update against the 2 s
    before (the spike; fresh endpoints mean fresh connections);
  - RSS with 1 endpoint, and with N;
  - CPU the proxy spent applying one update of N endpoints with no traffic (the endpoints'
    port moves between two servers each time; utime+stime over the 3 s after the send);
  - for Ferry, the xDS client's own cost: idle RSS with the 1-endpoint configuration from xDS
    against the same configuration from a file.

Nothing here is a test: the numbers are read and compared, never asserted. Results go to
bench/results/XDS.md.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop"))
import grpc  # noqa: E402

from ads_server import ADSServer, EDS, assignment, cluster, listener, route, route_table  # noqa: E402
from echo_server import make_server  # noqa: E402
from envoy_xds import Envoy, envoy_binary  # noqa: E402
from netutil import free_port, rss_kib, wait_for_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def endpoints(count, port):
    return [(f"127.0.{2 + i // 250}.{1 + i % 250}", port) for i in range(count)]


def resources(port, cluster_endpoints):
    return [cluster("big"), assignment("big", cluster_endpoints), listener("ingress", port, "routes"),
            route_table("routes", [route(prefix="/", cluster="big")])]


class Callers:
    """Back-to-back unary calls; (time, latency, upstream or None) of each."""

    def __init__(self, target, threads=4):
        self.channel = grpc.insecure_channel(target)
        self.events = []
        self.failed = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for w in self.workers:
            w.start()

    def run(self):
        call = self.channel.unary_unary("/ferry.test.Echo/Unary")
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                _, rpc = call.with_call(b"x" * 100, timeout=10)
                upstream = dict(rpc.initial_metadata()).get("x-upstream")
                with self.lock:
                    self.events.append((time.monotonic(), time.monotonic() - started, upstream))
            except grpc.RpcError:
                with self.lock:
                    self.failed += 1

    def first_call_to(self, upstream, after):
        with self.lock:
            return next((t for t, _, u in self.events if t >= after and u == upstream), None)

    def p99(self, start, end):
        with self.lock:
            latencies = sorted(l for t, l, _ in self.events if start <= t < end)
        return latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")

    def stop(self):
        self.stopping.set()
        for w in self.workers:
            w.join(10)
        self.channel.close()


def start_ferry(binary, ads_port, port, workdir):
    admin = free_port()
    path = os.path.join(workdir, "ferry.yaml")
    with open(path, "w") as f:
        f.write(f"admin: {{address: 127.0.0.1:{admin}}}\nruntime: {{event_loops: 1}}\n"
                f"xds:\n  server: 127.0.0.1:{ads_port}\n  node: {{id: bench, cluster: bench}}\n")
    proc = subprocess.Popen([binary, "run", "-c", path, "--log-level", "warning"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc


def client_cost(binary, upstream_port, workdir):
    """Idle RSS (KiB) of Ferry with one listener and one endpoint from a file, then from xDS."""
    port = free_port()
    path = os.path.join(workdir, "file.yaml")
    with open(path, "w") as f:
        f.write(f"runtime: {{event_loops: 1}}\nlisteners:\n  - {{name: ingress, address: '127.0.0.1:{port}', service: big}}\n"
                f"services:\n  big: {{endpoints: ['127.0.0.1:{upstream_port}']}}\n")
    proc = subprocess.Popen([binary, "run", "-c", path, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    time.sleep(2)
    file_rss = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(15)
    ads = ADSServer()
    port = free_port()
    ads.set_resources(*resources(port, [("127.0.0.1", upstream_port)]))
    proc = start_ferry(binary, ads.port, port, workdir)
    wait_for_port(port, timeout=30)
    time.sleep(2)
    xds_rss = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(15)
    ads.stop()
    return file_rss, xds_rss


def measure(name, start, args, upstream_ports):
    ads = ADSServer()
    port = free_port()
    ads.set_resources(*resources(port, [("127.0.0.1", upstream_ports["alpha"])]))
    proc, stop = start(ads.port, port)
    try:
        wait_for_port(port, timeout=30)
        time.sleep(1.0)
        callers = Callers(f"127.0.0.1:{port}")
        time.sleep(2.0)
        rss_one = rss_kib(proc.pid)
        sent = time.monotonic()
        ads.set_resources(*resources(port, endpoints(args.endpoints, upstream_ports["beta"])))
        deadline = time.monotonic() + 30
        while callers.first_call_to("beta", sent) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        routed = callers.first_call_to("beta", sent)
        time.sleep(2.5)
        callers.stop()
        before, after = callers.p99(sent - 2, sent), callers.p99(sent, sent + 2)
        rss_many = rss_kib(proc.pid)
        # CPU per update, no traffic: the N endpoints move between beta's and gamma's port.
        cpu = []
        for rep in range(args.reps):
            target = upstream_ports["gamma" if rep % 2 == 0 else "beta"]
            version = ads.version(EDS)
            before_cpu = cpu_seconds(proc.pid)
            ads.set_resources(*resources(port, endpoints(args.endpoints, target)))
            t = time.monotonic() + 20
            while not ads.acked(EDS, version + 1) and time.monotonic() < t:
                time.sleep(0.01)
            time.sleep(3.0)
            cpu.append((cpu_seconds(proc.pid) - before_cpu) * 1000)
        return {"name": name, "routed_ms": (routed - sent) * 1000 if routed else None, "failed": callers.failed,
                "calls": len(callers.events), "p99_before": before, "p99_after": after, "rss_one": rss_one,
                "rss_many": rss_many, "cpu_ms": statistics.median(cpu)}
    finally:
        stop()
        ads.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ferry", default=os.path.join(ROOT, ".build", "release", "ferry"))
    args = parser.parse_args()
    servers = {name: make_server(0, name=name, host="0.0.0.0") for name in ("alpha", "beta", "gamma")}
    upstream_ports = {name: port for name, (_, port, _) in servers.items()}
    workdir = tempfile.mkdtemp(prefix="ferry-bench-xds-")

    def ferry(ads_port, port):
        proc = start_ferry(args.ferry, ads_port, port, workdir)

        def stop():
            proc.terminate()
            proc.wait(15)
        return proc, stop

    def envoy(ads_port, port):
        e = Envoy(ads_port)
        return e.proc, e.stop

    file_rss, xds_rss = client_cost(args.ferry, upstream_ports["alpha"], workdir)
    rows = [measure("Ferry, 1 event loop", ferry, args, upstream_ports)]
    if envoy_binary():
        rows.append(measure("Envoy 1.40, 1 worker", envoy, args, upstream_ports))
    for server, _, _ in servers.values():
        server.stop(grace=None)

    envoy_row = next((r for r in rows if r["name"].startswith("Envoy")), None)

    def ratio(row, key):
        if not envoy_row or not row[key] or not envoy_row[key]:
            return "-"
        return f"{row[key] / envoy_row[key]:.2f}"

    lines = [f"# xDS: one EDS update of {args.endpoints:,} endpoints", "",
             f"2 cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the ADS server (grpcio + xds-protos), the grpcio "
             "callers (4 threads, back to back), the upstreams and the proxy share these cores. Ratios are against Envoy "
             "in the same run. `bench/xds_update.py` reproduces it.", "",
             "| proxy | update -> routing (ms) | x Envoy | calls | failed | p99 before / after (ms) | RSS 1 endpoint (MiB) "
             f"| RSS {args.endpoints:,} (MiB) | x Envoy | CPU per update (ms) | x Envoy |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        routed = f"{r['routed_ms']:.0f}" if r["routed_ms"] is not None else "never"
        lines.append(f"| {r['name']} | {routed} | {ratio(r, 'routed_ms')} | {r['calls']} | {r['failed']} | "
                     f"{r['p99_before']:.1f} / {r['p99_after']:.1f} | {r['rss_one'] / 1024:.1f} | {r['rss_many'] / 1024:.1f} | "
                     f"{ratio(r, 'rss_many')} | {r['cpu_ms']:.0f} | {ratio(r, 'cpu_ms')} |")
    lines += ["", f"Ferry's xDS client itself: idle RSS {xds_rss / 1024:.1f} MiB with the one-endpoint configuration from xDS, "
              f"{file_rss / 1024:.1f} MiB with the same from a file ({(xds_rss - file_rss) / 1024:+.1f} MiB)."]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(ROOT, "bench", "results", "XDS.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
