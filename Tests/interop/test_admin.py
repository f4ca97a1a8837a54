"""The admin server: Prometheus metrics that count real traffic exactly (parsed by the
prometheus_client library), readiness, liveness, the active config and live endpoints (the access log:
test_access_log.py)."""
import json
import time

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import CHANNEL_OPTIONS, free_port
from netutil import wait_until
from test_hostile_downstream import RawClient


def metrics(ferry):
    status, text = ferry.admin("/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):      # an independent parser: it must accept all of it
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, text


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_count_real_traffic_exactly(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    ferry = ferry_factory([port])
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        unary = channel.unary_unary("/ferry.test.Echo/Unary")
        failed = 0
        for i in range(100):
            if i % 14 == 3:                                  # 7 of the 100 fail with UNAVAILABLE
                try:
                    unary(b"down", metadata=[("x-status", "14")], timeout=5)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE
                    failed += 1
            else:
                unary(b"x" * 100, timeout=5)
        assert failed == 7
        # A method nobody routes elsewhere, for the method label; and a non-gRPC-shaped path.
        try:
            channel.unary_unary("/ferry.test.Echo/Nope")(b"", timeout=5)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED    # the upstream's answer, passed through
    samples, text = metrics(ferry)
    m = dict(listener="upstream", service="upstream", method="ferry.test.Echo/Unary")
    assert value(samples, "ferry_requests_total", **m) == 100
    assert value(samples, "ferry_grpc_responses_total", **m, grpc_status="OK") == 93
    assert value(samples, "ferry_grpc_responses_total", **m, grpc_status="UNAVAILABLE") == 7
    assert value(samples, "ferry_request_duration_seconds_count", **m) == 100
    assert value(samples, "ferry_response_headers_seconds_bucket", **m, le="+Inf") == 100
    assert value(samples, "ferry_request_bytes_total", **m) == 93 * 105 + 7 * 9      # 5-byte prefix + payload
    assert value(samples, "ferry_grpc_responses_total", listener="upstream", service="upstream",
                 method="ferry.test.Echo/Nope", grpc_status="UNIMPLEMENTED") == 1
    endpoint = f"127.0.0.1:{port}"
    assert value(samples, "ferry_endpoint_state", service="upstream", endpoint=endpoint, state="active") == 1
    assert value(samples, "ferry_endpoint_connections", service="upstream", endpoint=endpoint) >= 1
    assert value(samples, "ferry_downstream_connections", listener="upstream") == 0
    assert "# TYPE ferry_request_duration_seconds histogram" in text
    # Per endpoint: every attempt, every response by its status, the latency of each.
    e = dict(service="upstream", endpoint=endpoint)
    assert value(samples, "ferry_endpoint_requests_total", **e) == 101
    assert value(samples, "ferry_endpoint_responses_total", **e, grpc_status="OK") == 93
    assert value(samples, "ferry_endpoint_responses_total", **e, grpc_status="UNAVAILABLE") == 7
    assert value(samples, "ferry_endpoint_responses_total", **e, grpc_status="UNIMPLEMENTED") == 1
    assert value(samples, "ferry_endpoint_response_latency_seconds_count", **e) == 101
    buckets = [v for (name, labels), v in samples.items()
               if name == "ferry_endpoint_response_latency_seconds_bucket" and ("endpoint", endpoint) in labels]
    assert len(buckets) == 15 and max(buckets) == 101, buckets
    assert value(samples, "ferry_endpoint_connect_failures_total", **e) == 0


@pytest.fixture
def two_upstreams():
    from echo_server import make_server
    servers = [make_server(0) for _ in range(2)]
    yield [(port, state) for _, port, state in servers]
    for server, _, _ in servers:
        server.stop(grace=None)


def test_endpoint_metrics_tell_a_failing_and_a_dead_endpoint_apart(two_upstreams, ferry_factory):
    (good, _), (bad, bad_state) = two_upstreams
    bad_state.unary_fails = grpc.StatusCode.UNAVAILABLE          # Trailers-Only, retried elsewhere
    dead = free_port()
    # In turn: each endpoint is tried (the default balancer would soon leave the dead one be).
    ferry = ferry_factory({"svc": [good, bad, dead]}, service_options="""    balancer: round-robin
    failure_accrual: {consecutive_failures: 0}
    methods:
      - match: ferry.test.Echo/Unary
        retry: {on: [UNAVAILABLE], max_attempts: 3, backoff: {base: 1ms, max: 2ms}}""")
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        for _ in range(60):
            assert channel.unary_unary("/ferry.test.Echo/Unary")(b"x", timeout=10) == b"x"
    samples, _ = metrics(ferry)
    def e(port):
        return dict(service="svc", endpoint=f"127.0.0.1:{port}")
    assert value(samples, "ferry_endpoint_responses_total", **e(good), grpc_status="OK") == 60
    failed = value(samples, "ferry_endpoint_responses_total", **e(bad), grpc_status="UNAVAILABLE")
    assert failed == bad_state.calls and failed > 0, (failed, bad_state.calls)
    assert value(samples, "ferry_endpoint_responses_total", **e(bad), grpc_status="OK") == 0
    assert value(samples, "ferry_endpoint_connect_failures_total", **e(dead)) >= 1
    assert value(samples, "ferry_endpoint_responses_total", **e(dead), grpc_status="OK") == 0
    total = sum(value(samples, "ferry_endpoint_requests_total", **e(p)) for p in (good, bad, dead))
    assert total >= 60 + failed, total


def test_deadlines_load_shedding_and_protocol_errors_are_counted(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port], service_options="    timeout: 50ms")
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        for _ in range(3):
            try:
                channel.unary_unary("/ferry.test.Echo/Sleep")(b"", timeout=10)
            except grpc.RpcError:
                pass
    hostile = RawClient(ferry.port)
    hostile.sock.sendall(b"\x00\x01 not a preface\r\n\r\n")       # not HTTP/2 (nor HTTP/1): a bad preface
    hostile.frames(timeout=2)
    hostile.close()
    assert wait_until(lambda: value(metrics(ferry)[0], "ferry_protocol_errors_total",
                                    listener="upstream", kind="protocol_error") == 1, 5), metrics(ferry)[1]
    samples, _ = metrics(ferry)
    # The upstream's C-core may end a call first (it holds the propagated timeout); Ferry counts the ones it ended.
    ended_by_ferry = value(samples, "ferry_deadline_exceeded_total", service="upstream", source="method")
    answered_deadline = value(samples, "ferry_grpc_responses_total", listener="upstream", service="upstream",
                              method="ferry.test.Echo/Sleep", grpc_status="DEADLINE_EXCEEDED")
    assert answered_deadline == 3 and 0 <= ended_by_ferry <= 3


def test_ready_live_config_and_endpoints(grpc_upstream, ferry_factory, tmp_path):
    port, _ = grpc_upstream
    eps = tmp_path / "endpoints.yaml"
    eps.write_text("endpoints: []\n")
    listen, admin = free_port(), free_port()
    ferry = ferry_factory(config=f"""admin: {{address: "127.0.0.1:{admin}"}}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: svc}}
services:
  svc:
    discovery: {{file: {{path: {eps}, interval: 100ms}}}}
""", ports={"in": listen}, admin_port=admin)
    assert ferry.admin("/live") == (200, "live\n")
    assert ferry.admin("/ready") == (503, 'service "svc" has no endpoints\n')
    eps.write_text(f"endpoints: ['127.0.0.1:{port}']\n")
    assert wait_until(lambda: ferry.admin("/ready")[0] == 200, 5)
    status, body = ferry.admin("/config")
    config = json.loads(body)
    assert status == 200 and config["source"] == ferry.config_path
    assert abs(config["loaded_at_unix"] - time.time()) < 60
    assert any("default -> svc" in line for line in config["summary"])
    status, body = ferry.admin("/endpoints")
    endpoints = json.loads(body)
    assert endpoints["svc"][0]["address"] == f"127.0.0.1:{port}" and endpoints["svc"][0]["state"] == "active"
    assert ferry.admin("/nothing")[0] == 404


def test_version_build_info_and_process_metrics(grpc_upstream, ferry_factory):
    import os
    import subprocess
    from conftest import ferry_binary
    version = subprocess.run([ferry_binary(), "--version"], capture_output=True, text=True, timeout=10)
    assert version.returncode == 0 and version.stdout.startswith("ferry "), version
    stamped = version.stdout.split()[1]
    assert stamped != "unstamped", "scripts/build-ferry stamps the version it builds"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "VERSION")) as f:
        assert stamped.startswith(f.read().strip()), stamped
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    assert any(r.get("msg") == "ferry started" and r.get("version") == stamped for r in ferry.log_records()), ferry.logs()[:500]
    samples, _ = metrics(ferry)
    assert value(samples, "ferry_build_info", version=stamped) == 1
    pid = ferry.proc.pid
    with open(f"/proc/{pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = value(samples, "process_resident_memory_bytes")
    assert 0.5 * rss_kib * 1024 < rss < 2 * rss_kib * 1024, (rss, rss_kib)
    assert abs(value(samples, "process_open_fds") - fds) <= 3, (value(samples, "process_open_fds"), fds)
    assert value(samples, "process_max_fds") >= value(samples, "process_open_fds")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")     # utime + stime (proc(5) fields 14, 15)
    assert ("process_cpu_seconds_total", ()) in samples
    assert abs(value(samples, "process_cpu_seconds_total") - cpu) < 0.5, (value(samples, "process_cpu_seconds_total"), cpu)
    assert value(samples, "process_threads") >= 3
    started = value(samples, "process_start_time_seconds")
    assert time.time() - 120 < started <= time.time() + 1, started


def test_a_killed_endpoint_shows_unreachable_not_a_fast_estimate(ferry_factory):
    from echo_server import make_server
    server_a, port_a, _ = make_server(0)
    server_b, port_b, _ = make_server(0)
    try:
        ferry = ferry_factory({"svc": [port_a, port_b]}, service_options="    balancer: round-robin")
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            unary = channel.unary_unary("/ferry.test.Echo/Unary")
            for _ in range(20):
                assert unary(b"x", timeout=5) == b"x"
            server_a.stop(grace=None).wait()
            # Calls go on (a connect refused is placed again on B); A's connects keep failing.
            for _ in range(20):
                assert unary(b"x", timeout=5) == b"x"
        _, body = ferry.admin("/endpoints")
        a, b = sorted(json.loads(body)["svc"], key=lambda e: e["address"] != f"127.0.0.1:{port_a}")
        assert a["address"] == f"127.0.0.1:{port_a}"
        assert a["state"] in ("unreachable", "ejected", "probing"), a
        assert a["state"] != "active" and a["latency_estimate_ms"] is None and a["connections"] == 0, a
        assert a.get("connect_error") == "Connection refused" or a["state"] != "unreachable", a
        assert b["state"] == "active" and b["connections"] >= 1 and b["latency_estimate_ms"] > 0, b
    finally:
        server_b.stop(grace=None)
