"""Active health checks against grpcio servers running grpcio-health-checking's own Health
service: an endpoint that reports NOT_SERVING stops getting calls within two check intervals
and gets them again after it recovers; a service name the server does not know is a clear
endpoint state in /endpoints and /metrics."""
import json
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2

from conftest import free_port
from echo_server import make_server
from load import Load
from netutil import wait_until

INTERVAL = 0.5


@pytest.fixture
def checked_upstreams():
    servers = {}
    for name in ("a", "b"):
        servicer = health.HealthServicer()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        server, port, _ = make_server(0, name=name, health=servicer)
        servers[name] = (server, port, servicer)
    yield servers
    for server, _, _ in servers.values():
        server.stop(grace=None)


def start(ferry_factory, servers, service_name=""):
    listen, admin = free_port(), free_port()
    config = f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: app}}
services:
  app:
    endpoints: ["127.0.0.1:{servers['a'][1]}", "127.0.0.1:{servers['b'][1]}"]
    balancer: round-robin
    health_check: {{interval: {int(INTERVAL * 1000)}ms, timeout: 250ms, unhealthy_threshold: 2, healthy_threshold: 1, service: "{service_name}"}}
"""
    return ferry_factory(config=config, ports={"in": listen}, admin_port=admin)


def endpoint_states(ferry):
    _, body = ferry.admin("/endpoints")
    return {e["address"]: e for e in json.loads(body)["app"]}


def test_a_not_serving_endpoint_gets_no_calls_within_two_intervals_and_returns_after_recovery(checked_upstreams, ferry_factory):
    ferry = start(ferry_factory, checked_upstreams)
    b_address = f"127.0.0.1:{checked_upstreams['b'][1]}"
    load = Load(ferry.target, threads=4).start()
    try:
        assert wait_until(lambda: load.upstreams_since(time.monotonic() - 0.5)["b"] > 0, 5.0), load.summary()
        checked_upstreams["b"][2].set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        flipped = time.monotonic()
        # Two failed checks in a row take it out: at most two intervals after the flip (plus
        # the answer's time); calls already on their way finish.
        time.sleep(2 * INTERVAL + 0.5)
        quiet_from = time.monotonic()
        time.sleep(2.0)
        assert load.upstreams_since(quiet_from)["b"] == 0, load.upstreams_since(quiet_from)
        assert load.upstreams_since(quiet_from)["a"] > 0
        state = endpoint_states(ferry)[b_address]
        assert state["health_check"] == "unhealthy" and "NOT_SERVING" in state["health_check_reason"], state
        last_b = load.last_call_to("b")
        assert last_b is not None and last_b - flipped < 2 * INTERVAL + 0.5
        checked_upstreams["b"][2].set("", health_pb2.HealthCheckResponse.SERVING)
        recovered = time.monotonic()
        assert wait_until(lambda: load.first_call_to("b", recovered) is not None, 2 * INTERVAL + 3.0), load.summary()
    finally:
        load.stop()
    assert load.failures == [], load.failures[:3]
    assert "endpoint failed its health checks" in ferry.logs() and "passed its health checks again" in ferry.logs()
    _, metrics = ferry.admin("/metrics")
    assert f'ferry_endpoint_health_check_status{{service="app",endpoint="{b_address}",status="healthy"}} 1' in metrics, metrics
    assert f'ferry_health_checks_total{{service="app",endpoint="{b_address}",result="failed"}}' in metrics


def test_a_health_service_name_the_server_does_not_know_is_a_clear_endpoint_state(checked_upstreams, ferry_factory):
    ferry = start(ferry_factory, checked_upstreams, service_name="no.Such")
    assert wait_until(lambda: all(e.get("health_check") == "unhealthy" for e in endpoint_states(ferry).values()), 5.0), \
        endpoint_states(ferry)
    for e in endpoint_states(ferry).values():
        assert e["health_check_reason"] == 'the endpoint does not know the health of "no.Such" (NOT_FOUND)', e
    assert ferry.alive()


WATCH_INTERVAL = 5.0     # long: anything that happens within it comes by the Watch stream


def start_watching(ferry_factory, servers, unhealthy_threshold=2):
    listen, admin = free_port(), free_port()
    endpoints = ", ".join(f'"127.0.0.1:{port}"' for (_, port, _) in servers.values())
    config = f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: app}}
services:
  app:
    endpoints: [{endpoints}]
    balancer: round-robin
    health_check: {{watch: true, interval: {int(WATCH_INTERVAL * 1000)}ms, timeout: 1s, unhealthy_threshold: {unhealthy_threshold}}}
"""
    return ferry_factory(config=config, ports={"in": listen}, admin_port=admin)


def test_a_watch_stream_takes_an_endpoint_out_and_back_well_within_one_interval(checked_upstreams, ferry_factory):
    ferry = start_watching(ferry_factory, checked_upstreams)
    b_address = f"127.0.0.1:{checked_upstreams['b'][1]}"
    assert wait_until(lambda: endpoint_states(ferry)[b_address].get("health_check") == "healthy", WATCH_INTERVAL), \
        endpoint_states(ferry)
    load = Load(ferry.target, threads=4).start()
    try:
        assert wait_until(lambda: load.upstreams_since(time.monotonic() - 0.5)["b"] > 0, 5.0), load.summary()
        checked_upstreams["b"][2].set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        flipped = time.monotonic()
        assert wait_until(lambda: endpoint_states(ferry)[b_address].get("health_check") == "unhealthy", WATCH_INTERVAL / 2), \
            endpoint_states(ferry)
        out_after = time.monotonic() - flipped
        time.sleep(0.3)
        quiet_from = time.monotonic()
        time.sleep(1.0)
        assert load.upstreams_since(quiet_from)["b"] == 0, load.upstreams_since(quiet_from)
        checked_upstreams["b"][2].set("", health_pb2.HealthCheckResponse.SERVING)
        recovered = time.monotonic()
        assert wait_until(lambda: load.first_call_to("b", recovered) is not None, WATCH_INTERVAL / 2), load.summary()
        back_after = load.first_call_to("b", recovered) - recovered
    finally:
        load.stop()
    print(f"by Watch: out {out_after * 1000:.0f} ms after NOT_SERVING, first call {back_after * 1000:.0f} ms after SERVING "
          f"(check interval {WATCH_INTERVAL:.0f} s)")
    assert load.failures == [], load.failures[:3]
    _, metrics = ferry.admin("/metrics")
    passed = ferry.metric_sum("ferry_health_checks_total", f'endpoint="{b_address}"', 'result="passed"')
    failed = ferry.metric_sum("ferry_health_checks_total", f'endpoint="{b_address}"', 'result="failed"')
    assert (passed, failed) == (2, 1), (passed, failed, metrics)   # one message per state: SERVING, NOT_SERVING, SERVING


class CheckOnlyHealth(health.HealthServicer):
    """grpcio's health service with its Watch method answering UNIMPLEMENTED (as servers that
    predate Watch do)."""

    def Watch(self, request, context, send_response_callback=None):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "no Watch here")


def test_a_server_without_watch_is_asked_check_instead(ferry_factory):
    servicer = CheckOnlyHealth()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server, port, _ = make_server(0, name="old", health=servicer)
    try:
        ferry = start_watching(ferry_factory, {"old": (server, port, servicer)}, unhealthy_threshold=1)
        address = f"127.0.0.1:{port}"
        assert wait_until(lambda: endpoint_states(ferry)[address].get("health_check") == "unhealthy", WATCH_INTERVAL), \
            endpoint_states(ferry)
        assert endpoint_states(ferry)[address]["health_check_reason"] == "the endpoint reports NOT_SERVING"
        assert "has no grpc.health.v1.Health/Watch; asking Check" in ferry.logs()
    finally:
        server.stop(grace=None)
