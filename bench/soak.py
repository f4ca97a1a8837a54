#!/usr/bin/env python3
"""A soak: Ferry and nghttpx under the same steady load and the same faults, side by side.

    bench/soak [--minutes 30] [--interval 5] [--proxies ferry,nghttpx]

Each proxy gets its own upstreams and its own load, started together and run for --minutes
(30 by default), while the same events happen to both on the same schedule:

  - grpcio clients call Unary at a fixed rate (to the `up` upstreams, and with the authority
    `named.test` to the `named` ones), and ServerStream (20 messages) and Bidi (10 messages
    each way) calls run back to back;
  - connection churn: every 10 s h2load opens 16 new connections, makes 10 calls on each and
    closes them;
  - every 5 s the proxy reloads its configuration (a changed file and SIGHUP): Ferry's
    balancer and upstream idle timeout alternate; nghttpx's read timeout does;
  - every 60 s one of the three `up` upstreams is killed (kill -9) and started again 3 s later;
  - every 90 s the DNS name `svc.test` (dnsmasq, TTL 1 s) moves between 127.0.0.2 and
    127.0.0.3; Ferry's `named` service discovers it by DNS (nghttpx's `named` backends are the
    two addresses, fixed: it has no DNS discovery with a chosen resolver).

Every --interval seconds it samples each proxy's processes: RSS, open fds, threads, open
upstream connections (established TCP sockets to an upstream port, from /proc), and the
calls of the interval (ok, failed, p50/p99 latency of the unary ones). After a warm-up (the
first 10%, at least 60 s) a least-squares line is fitted to each series, and Ferry fails the
soak if one rises over the fitted span by more than its bound (RSS: 4 MiB or 5% of its
median, the larger; fds: 10; threads: 2; upstream connections: 6), or if it died, or if
fewer than 99% of its unary calls succeeded. nghttpx's fits are reported beside it, never
judged. Writes bench/results/SOAK.md, the samples as bench/results/soak.csv, and the curves
as bench/results/soak.png (when matplotlib is installed in .venv).
"""
import argparse
import csv
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from dnsmasq import DnsServer, write_atomically  # noqa: E402
from harness import FERRY, table  # noqa: E402
from load import CHANNEL_OPTIONS  # noqa: E402
from netutil import free_port, wait_for_port  # noqa: E402
from processes import EchoProcess  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")
SERIES = ("rss_mib", "fds", "threads", "upstream_connections")
UNARY = "/ferry.test.Echo/Unary"
MESSAGE = b"x" * 100


# ---------------------------------------------------------------- what is measured


def process_tree(pid):
    """The process and its descendants (nghttpx runs a worker under its master)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def established_to(ports):
    """Inodes of established TCP sockets whose remote port is one of `ports`."""
    inodes = set()
    for table_file in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table_file) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if fields[3] == "01" and remote_port in ports:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def sample_processes(pid, upstream_ports):
    rss = fds = threads = 0
    socket_inodes = set()
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Threads:"):
                        threads += int(line.split()[1])
            for fd in os.listdir(f"/proc/{p}/fd"):
                fds += 1
                try:
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    socket_inodes.add(target[8:-1])
        except OSError:
            continue
    upstream = len(socket_inodes & established_to(upstream_ports))
    return {"rss_mib": rss / 1024, "fds": fds, "threads": threads, "upstream_connections": upstream}


class Calls:
    """Outcomes of the calls since the last sample."""

    def __init__(self):
        self.lock = threading.Lock()
        self.unary_ms, self.unary_failed, self.streams_ok, self.streams_failed = [], 0, 0, 0
        self.total_unary = self.total_unary_failed = 0
        self.failures = {}

    def unary(self, ms, error=None):
        with self.lock:
            self.total_unary += 1
            if error is None:
                self.unary_ms.append(ms)
            else:
                self.unary_failed += 1
                self.total_unary_failed += 1
                self.failures[error] = self.failures.get(error, 0) + 1

    def stream(self, error=None):
        with self.lock:
            if error is None:
                self.streams_ok += 1
            else:
                self.streams_failed += 1
                self.failures["stream " + error] = self.failures.get("stream " + error, 0) + 1

    def take(self):
        with self.lock:
            ms, failed, s_ok, s_failed = self.unary_ms, self.unary_failed, self.streams_ok, self.streams_failed
            self.unary_ms, self.unary_failed, self.streams_ok, self.streams_failed = [], 0, 0, 0
        ms.sort()
        pct = lambda p: ms[min(len(ms) - 1, int(len(ms) * p))] if ms else 0.0
        return {"unary_ok": len(ms), "unary_failed": failed, "streams_ok": s_ok, "streams_failed": s_failed,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


# ---------------------------------------------------------------- load


def unary_caller(target, rate, calls, stopping, authority=None):
    options = list(CHANNEL_OPTIONS) + ([("grpc.default_authority", authority)] if authority else [])
    with grpc.insecure_channel(target, options=options) as channel:
        stub = channel.unary_unary(UNARY)
        next_call = time.monotonic()
        while not stopping.is_set():
            next_call += 1 / rate
            t0 = time.monotonic()
            try:
                stub(MESSAGE, timeout=5)
                calls.unary((time.monotonic() - t0) * 1000)
            except grpc.RpcError as e:
                calls.unary((time.monotonic() - t0) * 1000, error=e.code().name)
            delay = next_call - time.monotonic()
            if delay > 0:
                stopping.wait(delay)
            else:
                next_call = time.monotonic()


def stream_caller(target, calls, stopping):
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        server_stream = channel.unary_stream("/ferry.test.Echo/ServerStream")
        bidi = channel.stream_stream("/ferry.test.Echo/Bidi")
        while not stopping.is_set():
            try:
                got = list(server_stream(struct.pack(">III", 20, 100, 0), timeout=10))
                if len(got) != 20:
                    raise ValueError("short")
                got = list(bidi(iter([MESSAGE] * 10), timeout=10))
                if len(got) != 10:
                    raise ValueError("short")
                calls.stream()
            except grpc.RpcError as e:
                calls.stream(e.code().name)
            except ValueError:
                calls.stream("SHORT")
            stopping.wait(0.05)


def churn(port, workdir, stopping):
    """h2load: 16 new connections, 10 calls each, closed; every 10 s."""
    body = os.path.join(workdir, "request")
    with open(body, "wb") as f:
        f.write(b"\x00" + struct.pack(">I", len(MESSAGE)) + MESSAGE)
    while not stopping.wait(10):
        subprocess.run(["h2load", "-c", "16", "-n", "160", "-m", "2", "-d", body, "-H", "content-type: application/grpc",
                        "-H", "te: trailers", f"http://127.0.0.1:{port}{UNARY}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


# ---------------------------------------------------------------- the proxies


class Proxy:
    """One proxy with its upstreams: three `up` echo servers on 127.0.0.1 and two `named` ones
    on 127.0.0.2 and 127.0.0.3 (one port: A records carry none)."""

    def __init__(self, name, workdir, dns):
        self.name, self.workdir, self.dns = name, os.path.join(workdir, name), dns
        os.makedirs(self.workdir)
        self.port = free_port()
        self.up = [EchoProcess(f"{name}-up{i}") for i in range(3)]
        named_port = free_port()
        self.named = [EchoProcess(f"{name}-{h}", host=h, port=named_port) for h in ("127.0.0.2", "127.0.0.3")]
        self.upstream_ports = {u.port for u in self.up} | {named_port}
        self.reloads = 0
        self.write_config()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.workdir, "stderr"), "w"))
        wait_for_port(self.port)

    def reload(self):
        self.reloads += 1
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for u in self.up + self.named:
            u.stop()


class FerryProxy(Proxy):
    def command(self):
        return [FERRY, "run", "-c", self.config, "--log-level", "warning"]

    def write_config(self):
        self.config = os.path.join(self.workdir, "ferry.yaml")
        balancer = ("p2c-peak-ewma", "round-robin")[self.reloads % 2]
        idle = ("30s", "20s")[self.reloads % 2]
        endpoints = ", ".join(f"'127.0.0.1:{u.port}'" for u in self.up)
        write_atomically(self.config, f"""runtime: {{event_loops: 2}}
listeners:
  - name: in
    address: '127.0.0.1:{self.port}'
    routes:
      - {{match: {{authority: named.test}}, service: named}}
    service: up
services:
  up:
    endpoints: [{endpoints}]
    balancer: {balancer}
    idle_timeout: {idle}
  named:
    discovery: {{dns: {{name: svc.test, port: {self.named[0].port}, resolver: '127.0.0.1:{self.dns.port}'}}}}
""")


class NghttpxProxy(Proxy):
    def command(self):
        return ["nghttpx", f"--conf={self.config}"]

    def write_config(self):
        self.config = os.path.join(self.workdir, "nghttpx.conf")
        timeout = ("3m", "4m")[self.reloads % 2]
        backends = "".join(f"backend=127.0.0.1,{u.port};;proto=h2\n" for u in self.up)
        backends += "".join(f"backend={u.host},{u.port};named.test/;proto=h2\n" for u in self.named)
        write_atomically(self.config, f"""frontend=127.0.0.1,{self.port};no-tls
{backends}workers=1
frontend-read-timeout={timeout}
errorlog-file={self.workdir}/nghttpx.err
""")


PROXIES = {"ferry": ("Ferry", FerryProxy), "nghttpx": ("nghttpx", NghttpxProxy)}


# ---------------------------------------------------------------- fits and the report


def fit(times, values):
    """Least-squares slope (per second) of values over times."""
    n = len(times)
    if n < 3:
        return 0.0
    mt, mv = sum(times) / n, sum(values) / n
    var = sum((t - mt) ** 2 for t in times)
    return sum((t - mt) * (v - mv) for t, v in zip(times, values)) / var if var else 0.0


def bound(series, values):
    if series == "rss_mib":
        return max(4.0, 0.05 * statistics.median(values))
    return {"fds": 10, "threads": 2, "upstream_connections": 6}[series]


def judge(samples, warmup):
    """For each series: (fitted rise over the span after warm-up, bound, within?)."""
    kept = [s for s in samples if s["t"] >= warmup]
    if len(kept) < 3:
        kept = samples
    times = [s["t"] for s in kept]
    span = times[-1] - times[0] if times else 0
    verdicts = {}
    for series in SERIES:
        values = [s[series] for s in kept]
        rise = fit(times, values) * span
        limit = bound(series, values)
        verdicts[series] = (rise, limit, rise <= limit)
    return verdicts


def plot(samples, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(3, 2, figsize=(12, 10))
    panels = [("rss_mib", "RSS (MiB)"), ("fds", "open fds"), ("threads", "threads"),
              ("upstream_connections", "upstream connections"), ("p50_ms", "unary p50 (ms)"), ("p99_ms", "unary p99 (ms)")]
    for ax, (key, title) in zip(axes.flat, panels):
        for proxy, rows in samples.items():
            ax.plot([r["t"] / 60 for r in rows], [r[key] for r in rows], label=PROXIES[proxy][0])
        ax.set_title(title)
        ax.set_xlabel("minutes")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=float, default=5, help="seconds between samples")
    parser.add_argument("--proxies", default="ferry,nghttpx")
    parser.add_argument("--unary-rate", type=float, default=60, help="unary calls/s per caller (4 callers per proxy)")
    args = parser.parse_args()
    names = [n for n in args.proxies.split(",") if n]
    for n in names:
        if n not in PROXIES:
            parser.error(f"unknown proxy {n!r} (ferry, nghttpx)")

    duration = args.minutes * 60
    workdir = tempfile.mkdtemp(prefix="ferry-soak-")
    dns = DnsServer("127.0.0.2 svc.test\n")
    proxies, stopping, threads = {}, threading.Event(), []
    calls = {n: Calls() for n in names}
    samples = {n: [] for n in names}
    events = []
    try:
        for n in names:
            proxies[n] = PROXIES[n][1](n, workdir, dns)
        for n, proxy in proxies.items():
            target = f"127.0.0.1:{proxy.port}"
            workers = [(unary_caller, (target, args.unary_rate, calls[n], stopping)) for _ in range(3)]
            workers.append((unary_caller, (target, args.unary_rate, calls[n], stopping, "named.test")))
            workers += [(stream_caller, (target, calls[n], stopping))] * 2
            workers.append((churn, (proxy.port, proxy.workdir, stopping)))
            for fn, fn_args in workers:
                t = threading.Thread(target=fn, args=fn_args, daemon=True)
                t.start()
                threads.append(t)

        start = time.monotonic()
        # Reloads fall half-way between samples, so no sample sees only the moment after one.
        next_sample, next_reload = start + args.interval, start + 2.5
        next_kill, next_dns, restart_at, killed, dns_flips = start + 60, start + 90, None, 0, 0
        print(f"soak: {', '.join(PROXIES[n][0] for n in names)} for {args.minutes:g} min, a sample every "
              f"{args.interval:g} s (workdir {workdir})", flush=True)
        while (now := time.monotonic()) < start + duration:
            if now >= next_reload:
                for proxy in proxies.values():
                    proxy.reload()
                next_reload += 5
            if now >= next_kill:
                for proxy in proxies.values():
                    proxy.up[killed % 3].stop()
                events.append((now - start, f"kill up{killed % 3}"))
                restart_at, next_kill = now + 3, next_kill + 60
            if restart_at and now >= restart_at:
                for proxy in proxies.values():
                    proxy.up[killed % 3].start()
                killed, restart_at = killed + 1, None
            if now >= next_dns:
                dns_flips += 1
                dns.set_hosts(f"127.0.0.{2 + dns_flips % 2} svc.test\n")
                events.append((now - start, f"svc.test -> 127.0.0.{2 + dns_flips % 2}"))
                next_dns += 90
            if now >= next_sample:
                for n, proxy in proxies.items():
                    if proxy.proc.poll() is not None:
                        raise RuntimeError(f"{PROXIES[n][0]} exited with {proxy.proc.returncode}")
                    row = {"t": round(now - start, 1), **sample_processes(proxy.proc.pid, proxy.upstream_ports),
                           **calls[n].take()}
                    samples[n].append(row)
                line = "  ".join(f"{PROXIES[n][0]}: {r['rss_mib']:.1f} MiB {r['fds']} fds {r['threads']} thr "
                                 f"{r['upstream_connections']} up p99 {r['p99_ms']:.1f} ms {r['unary_failed']} failed"
                                 for n, r in ((n, samples[n][-1]) for n in names))
                print(f"{now - start:7.0f}s  {line}", flush=True)
                next_sample += args.interval
            time.sleep(0.05)
        stopping.set()
        alive = {n: p.proc.poll() is None for n, p in proxies.items()}
    finally:
        stopping.set()
        for t in threads:
            t.join(timeout=15)
        for proxy in proxies.values():
            proxy.stop()
        dns.stop()

    warmup = max(60.0, 0.1 * duration)
    report = [f"# Soak: {args.minutes:g} minutes", "",
              f"`bench/soak --minutes {args.minutes:g}` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores. "
              f"Each proxy: 4 unary callers at {args.unary_rate:g} calls/s (one to the DNS-discovered service), "
              "2 streaming callers back to back, h2load churn (16 connections x 10 calls every 10 s), a reload every 5 s, "
              f"an upstream killed every 60 s and restarted 3 s later, svc.test moved every 90 s ({len(events)} events). "
              f"Fits after a {warmup:.0f} s warm-up; a sample every {args.interval:g} s.", ""]
    failed = False
    rows = []
    for n in names:
        verdicts = judge(samples[n], warmup)
        c = calls[n]
        success = 1 - c.total_unary_failed / c.total_unary if c.total_unary else 0
        first, last = samples[n][0], samples[n][-1]
        for series in SERIES:
            rise, limit, ok = verdicts[series]
            judged = n == "ferry"
            if judged and not ok:
                failed = True
            rows.append((PROXIES[n][0], series, f"{first[series]:.1f}", f"{last[series]:.1f}",
                         f"{min(s[series] for s in samples[n]):.1f} .. {max(s[series] for s in samples[n]):.1f}",
                         f"{rise:+.2f}", f"{limit:.1f}", ("ok" if ok else "GROWS") if judged else "(not judged)"))
        p99s = [s["p99_ms"] for s in samples[n] if s["unary_ok"]]
        report.append(f"- {PROXIES[n][0]}: {c.total_unary:,} unary calls, {success:.4%} ok; median p99 per interval "
                      f"{statistics.median(p99s) if p99s else 0:.1f} ms; failures by code {dict(sorted(c.failures.items()))}; "
                      f"{'alive' if alive[n] else 'DIED'} at the end; {proxies[n].reloads} reloads")
        if n == "ferry" and (not alive[n] or success < 0.99):
            failed = True
    report += ["", table(["proxy", "series", "first", "last", "range", "fitted rise", "bound", "verdict"], rows), ""]
    report.append(f"Verdict: {'FAILED' if failed else 'passed'}.")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "soak.csv"), "w", newline="") as f:
        w = csv.writer(f)
        keys = ["t"] + list(SERIES) + ["unary_ok", "unary_failed", "streams_ok", "streams_failed", "p50_ms", "p99_ms"]
        w.writerow(["proxy"] + keys)
        for n in names:
            for s in samples[n]:
                w.writerow([n] + [s[k] for k in keys])
    if plot(samples, os.path.join(RESULTS, "soak.png")):
        report += ["", "![RSS, fds, threads, upstream connections and latency over time](soak.png)"]
    text = "\n".join(report) + "\n"
    with open(os.path.join(RESULTS, "SOAK.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
