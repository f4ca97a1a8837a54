"""Rate limits per caller identity over mutual TLS, with grpcio clients presenting certificates
(gRPC C-core's TLS): each verified identity gets its own bucket whatever connections it uses,
one caller over its limit does not take another's calls, and a refusal names the limit."""
import shutil
import tempfile
import threading
import time

import grpc
import pytest

from certs import make_certs
from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server
from test_mtls import tls_channel

RATE, BURST, SECONDS = 20, 5, 5.0


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="ferry-certs-")
    make_certs(d, "server=ns/prod/sa/server", "node-a", "node-b", "frontend=ns/shop/sa/frontend")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def hammer(port, certs, name, until, results, pace=None):
    """Unary calls as identity `name` until `until` (back to back, or `pace` apart): counts by outcome."""
    with tls_channel(port, certs, name=name) as channel:
        stub = channel.unary_unary("/ferry.test.Echo/Unary")
        while time.monotonic() < until:
            try:
                stub(b"x", timeout=5)
                outcome = "ok"
            except grpc.RpcError as e:
                outcome = (e.code(), e.details())
            with results["lock"]:
                results.setdefault(name, []).append(outcome)
                results.setdefault(name + " times", []).append(time.monotonic())
            if pace:
                time.sleep(pace)


def test_each_identity_has_its_own_bucket_across_its_connections(certs, ferry_factory):
    server, upstream_port, state = make_server(0, name="app")
    try:
        port, admin = free_port(), free_port()
        config = f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - name: inbound
    address: 127.0.0.1:{port}
    service: app
    tls: {{certificate: {certs}/server.pem, key: {certs}/server-key.pem, client_ca: {certs}/ca.pem}}
services:
  app:
    endpoints: ["127.0.0.1:{upstream_port}"]
    rate_limit: {{rate: {RATE}/s, burst: {BURST}, per: caller}}
"""
        ferry = ferry_factory(config=config, ports={"inbound": port}, admin_port=admin)
        results = {"lock": threading.Lock()}
        start = time.monotonic()
        until = start + SECONDS
        # node-a on three connections, node-b on two, all back to back; frontend at 5 calls/s.
        callers = [("node-a", None)] * 3 + [("node-b", None)] * 2 + [("frontend", 0.2)]
        threads = [threading.Thread(target=hammer, args=(port, certs, name, until, results, pace)) for name, pace in callers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    finally:
        server.stop(grace=None)
    # Each identity's window is from its first answer to its last (TLS handshakes and a busy
    # machine delay the starts): what it may be admitted is the burst plus the rate over it.
    windows = {name: results[name + " times"][-1] - results[name + " times"][0] for name in ("node-a", "node-b")}
    admitted = {name: results[name].count("ok") for name in ("node-a", "node-b", "frontend")}
    refused = {name: [o for o in results[name] if o != "ok"] for name in ("node-a", "node-b", "frontend")}
    print(f"per caller {RATE}/s burst {BURST} over {elapsed:.2f} s (windows {windows}): "
          f"admitted {admitted}, refused { {n: len(r) for n, r in refused.items()} }")
    for name in ("node-a", "node-b"):
        expected = BURST + RATE * windows[name]
        assert len(results[name]) > 2 * expected, f"{name} must ask more than its limit: {len(results[name])}"
        assert abs(admitted[name] - expected) <= expected * 0.1, (name, admitted[name], expected)
        assert all(code == grpc.StatusCode.RESOURCE_EXHAUSTED for code, _ in refused[name]), refused[name][:3]
        assert all("this caller is over its rate limit of 20/s (burst 5) per caller for service \"app\" (services.app.rate_limit)"
                   in details for _, details in refused[name]), refused[name][:3]
    assert refused["frontend"] == [] and admitted["frontend"] >= 10, (admitted, refused["frontend"][:3])
    assert len(state.unary_metadata) == sum(admitted.values()), "a refused call never reaches the upstream"
    assert ferry.metric_sum("ferry_rate_limited_total", 'limit="services.app"') == len(refused["node-a"]) + len(refused["node-b"])
