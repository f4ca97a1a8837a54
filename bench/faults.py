#!/usr/bin/env python3
"""Upstream faults under load, Ferry beside haproxy, nghttpx and Envoy, in one run.

    .venv/bin/python bench/faults.py [--quick]

Three upstreams behind each proxy, eight grpcio callers calling unary methods back to back
with 2 s deadlines (Tests/interop/peers/load.py), and one fault at a time:

  1. freeze: SIGSTOP one grpcio upstream for 5 s, then SIGCONT. Lost calls; how long after
     the freeze calls were still sent into it (the latest start of a call that failed); the
     rate served during the freeze against the rate before it.
  2. crash: kill -9 one grpcio upstream, restart it on the same port 2 s later. Lost calls;
     the time from its restart to the first call it served.
  3. GOAWAY storm: three python-h2 upstreams that end every connection with a GOAWAY at its
     5th stream (refusing that stream and any later); 3,000 calls. Lost calls.
  4. shared outage: every grpcio upstream answers UNAVAILABLE for 10 s, then recovers. In each
     of the 4 seconds after the recovery, the smallest share of the calls one upstream served
     (33% is an even spread; an upstream still ejected shows as 0%).

Each proxy is set up with what it offers for this: Ferry with its defaults (P2C PeakEWMA,
failure accrual, retries); haproxy leastconn with health checks every 100 ms and retries of
connect failures, empty and malformed responses; nghttpx with its defaults (it retries
connect failures); Envoy least-request with retries (reset, connect-failure, refused-stream,
unavailable; other hosts first; the retry circuit breaker raised from 3 concurrent retries to
1,000) and outlier detection. The numbers are to be read, never asserted: the tests
(Tests/interop/test_faults.py) assert the behaviour. Writes bench/results/FAULTS.md.
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop", "peers"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from harness import FERRY, Processes, envoy_binary, envoy_config, table  # noqa: E402
from h2_upstream import H2Upstream  # noqa: E402
from load import Load, fixed_calls  # noqa: E402
from netutil import free_port  # noqa: E402
from processes import EchoProcess  # noqa: E402

DEADLINE = 2.0
CALLERS = 8


def ferry(workdir, port, upstreams):
    path = os.path.join(workdir, "ferry.yaml")
    endpoints = ", ".join(f"'127.0.0.1:{u}'" for u in upstreams)
    with open(path, "w") as f:
        f.write(f"runtime: {{event_loops: 1}}\nlisteners:\n  - {{name: l, address: '127.0.0.1:{port}', service: up}}\n"
                f"services:\n  up:\n    endpoints: [{endpoints}]\n")
    return [FERRY, "run", "-c", path, "--log-level", "error"]


def haproxy(workdir, port, upstreams):
    path = os.path.join(workdir, "haproxy.cfg")
    servers = "\n".join(f"    server s{i} 127.0.0.1:{u} proto h2 check inter 100ms fall 2 rise 1"
                        for i, u in enumerate(upstreams))
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
    retry-on conn-failure empty-response junk-response
frontend in
    bind 127.0.0.1:{port} proto h2
    default_backend up
backend up
    balance leastconn
{servers}
""")
    return ["haproxy", "-f", path]


def nghttpx(workdir, port, upstreams):
    backends = [f"--backend=127.0.0.1,{u};;proto=h2" for u in upstreams]
    return ["nghttpx", f"--frontend=127.0.0.1,{port};no-tls", *backends, "--workers=1",
            f"--errorlog-file={workdir}/nghttpx.err", "--conf=/dev/null"]


def envoy(workdir, port, upstreams):
    path = envoy_config(workdir, port, upstreams, route_options="""\
                  retry_policy:
                    retry_on: "reset,connect-failure,refused-stream,unavailable"
                    num_retries: 2
                    retry_host_predicate:
                    - name: envoy.retry_host_predicates.previous_hosts
                      typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}
                    host_selection_retry_max_attempts: 3
""", cluster_options="""\
    lb_policy: LEAST_REQUEST
    circuit_breakers: {thresholds: [{max_retries: 1000}]}
    outlier_detection: {consecutive_5xx: 7, interval: 1s, base_ejection_time: 1s}
""")
    return [envoy_binary(), "-c", path, "--concurrency", "1", "-l", "error", "--disable-hot-restart",
            "--base-id", str(os.getpid() % 10000)]


PROXIES = [("Ferry", ferry), ("haproxy (health checks)", haproxy), ("nghttpx", nghttpx), ("Envoy 1.40", envoy)]


def with_proxy(make, upstream_ports, run):
    workdir = tempfile.mkdtemp(prefix="ferry-faults-")
    procs = Processes()
    try:
        port = free_port()
        procs.start(make(workdir, port, upstream_ports), port)
        time.sleep(0.5)
        return run(f"127.0.0.1:{port}")
    finally:
        procs.stop_all()


def freeze(make, seconds):
    upstreams = [EchoProcess(n) for n in ("a", "b", "c")]
    try:
        def run(target):
            load = Load(target, threads=CALLERS, timeout=DEADLINE).start()
            time.sleep(2)
            before = load.ok / (time.monotonic() - load.started)
            upstreams[1].freeze()
            froze = time.monotonic()
            ok_at_freeze = load.ok
            time.sleep(seconds)
            during = (load.ok - ok_at_freeze) / seconds
            upstreams[1].thaw()
            time.sleep(1)
            load.stop()
            starts = [f[3] - froze for f in load.failures if f[3] >= froze - DEADLINE]
            late = f"{max(starts):.2f} s" if starts else "-"
            return [str(len(load.failures)), late, f"{during:,.0f} / {before:,.0f} ({during / before:.0%})"]
        return with_proxy(make, [u.port for u in upstreams], run)
    finally:
        for u in upstreams:
            u.stop()


def crash(make):
    upstreams = [EchoProcess(n) for n in ("a", "b", "c")]
    try:
        def run(target):
            load = Load(target, threads=CALLERS, timeout=DEADLINE).start()
            time.sleep(1.5)
            upstreams[1].stop()
            time.sleep(2)
            upstreams[1].start()
            restarted = time.monotonic()
            back = None
            while back is None and time.monotonic() - restarted < 10:
                back = load.first_call_to("b", after=restarted)
                time.sleep(0.02)
            time.sleep(0.5)
            load.stop()
            return [str(len(load.failures)), f"{back - restarted:.2f} s" if back else "> 10 s"]
        return with_proxy(make, [u.port for u in upstreams], run)
    finally:
        for u in upstreams:
            u.stop()


def goaway_storm(make, calls):
    upstreams = [H2Upstream(goaway_every=5) for _ in range(3)]
    try:
        def run(target):
            outcomes = fixed_calls(target, calls, callers=CALLERS, timeout=10.0)
            lost = sum(1 for o in outcomes if o[2] is not None)
            return [f"{lost} of {len(outcomes):,}", f"{sum(u.goaways_sent for u in upstreams):,}"]
        return with_proxy(make, [u.port for u in upstreams], run)
    finally:
        for u in upstreams:
            u.stop()


def shared_outage(make, seconds):
    flag = os.path.join(tempfile.mkdtemp(prefix="ferry-outage-"), "failing")
    open(flag, "w").close()
    upstreams = [EchoProcess(n, "--fail-while", flag) for n in ("a", "b", "c")]
    try:
        def run(target):
            load = Load(target, threads=CALLERS, timeout=DEADLINE).start()
            time.sleep(seconds)
            os.unlink(flag)
            recovered = time.monotonic()
            time.sleep(4)
            load.stop()
            # Each upstream's share of the calls served in each second after the recovery: a
            # balancer that keeps healthy endpoints ejected shows one taking most of them.
            shares = []
            for second in range(4):
                served = [t for t, _ in load.events if recovered + second <= t < recovered + second + 1]
                by = {n: sum(1 for t, u in load.events if recovered + second <= t < recovered + second + 1 and u == n)
                      for n in ("a", "b", "c")}
                shares.append(f"{min(by.values()) / max(1, len(served)):.0%}")
            return [" / ".join(shares)]
        return with_proxy(make, [u.port for u in upstreams], run)
    finally:
        for u in upstreams:
            u.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    freeze_s, storm_calls, outage_s = (3, 1000, 4) if args.quick else (5, 3000, 10)
    rows = []
    for name, make in PROXIES:
        if make is envoy and not envoy_binary():
            continue
        row = [name]
        row += freeze(make, freeze_s)
        row += crash(make)
        row += goaway_storm(make, storm_calls)
        row += shared_outage(make, outage_s)
        print(" | ".join(row), flush=True)
        rows.append(row)
    report = ("# Upstream faults under load\n\n"
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; every process shares them. "
              f"Three upstreams, {CALLERS} grpcio callers back to back, {DEADLINE:.0f} s deadlines; "
              "how each proxy is set up, and what each column means: bench/faults.py. "
              f"Freeze: SIGSTOP of one upstream for {freeze_s} s. Crash: kill -9, restarted 2 s later. "
              f"GOAWAY storm: {storm_calls:,} calls, every connection of every upstream ends at its 5th stream. "
              f"Shared outage: every upstream failing for {outage_s} s.\n\n"
              + table(["proxy", "freeze: lost", "freeze: last call sent into it", "freeze: calls/s during / before",
                       "crash: lost", "crash: restart to first call", "GOAWAY storm: lost", "GOAWAYs",
                       "outage: smallest share, seconds 1 / 2 / 3 / 4 after recovery"], rows))
    print(report)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "FAULTS.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
