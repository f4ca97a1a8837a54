"""Fault injection with grpcio clients and upstreams: configured shares of aborts and delays
over thousands of calls, faults a request asks for in ferry-fault-* headers where a route
allows it, and the counts in /metrics."""
import struct
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server
from load import fixed_calls


@pytest.fixture
def upstream():
    server, port, state = make_server(0, name="app")
    yield port, state
    server.stop(grace=None)


def start(ferry_factory, port):
    listen, admin = free_port(), free_port()
    config = f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - name: in
    address: "127.0.0.1:{listen}"
    routes:
      - match: {{method: "ferry.test.Echo/Unary"}}
        service: app
        fault:
          abort: {{status: UNAVAILABLE, percent: 10}}
          delay: {{duration: 300ms, percent: 5}}
      - match: {{method: "ferry.test.Echo/*", headers: [{{name: x-chaos, present: true}}]}}
        service: app
        fault: {{from_headers: true, max_header_delay: 1s}}
      - service: app
services:
  app:
    endpoints: ["127.0.0.1:{port}"]
    retry: {{on: [UNAVAILABLE], max_attempts: 3}}
"""
    return ferry_factory(config=config, ports={"in": listen}, admin_port=admin)



def test_configured_aborts_and_delays_land_within_2_points_of_their_shares(upstream, ferry_factory):
    port, state = upstream
    ferry = start(ferry_factory, port)
    calls = 4000
    outcomes = fixed_calls(ferry.target, calls, 16)
    aborted = [o for o in outcomes if o[2] is not None]
    assert all(o[2][0] == grpc.StatusCode.UNAVAILABLE and "fault injected (listeners[0].routes[0].fault)" in o[2][1]
               for o in aborted), aborted[:3]
    # A delayed call took at least the delay; an undelayed one here takes milliseconds.
    delayed = [o for o in outcomes if o[0] >= 0.3]
    print(f"{calls} calls: {len(aborted)} aborted ({len(aborted) / calls:.2%}, configured 10%), "
          f"{len(delayed)} delayed ({len(delayed) / calls:.2%}, configured 5%)")
    assert abs(len(aborted) / calls - 0.10) < 0.02
    assert abs(len(delayed) / calls - 0.05) < 0.02
    # Retries (on UNAVAILABLE here) do not hide an injected abort, and the upstream never saw one.
    assert len(state.unary_metadata) == calls - len(aborted)
    assert ferry.metric_sum("ferry_faults_injected_total", 'kind="abort"', 'fault="listeners[0].routes[0].fault"') == len(aborted)
    assert ferry.metric_sum("ferry_faults_injected_total", 'kind="delay"') == pytest.approx(len(delayed), abs=max(3, len(delayed) // 20))


def test_a_request_asks_for_a_fault_where_the_route_allows_it(upstream, ferry_factory):
    port, state = upstream
    ferry = start(ferry_factory, port)
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        stream = channel.unary_stream("/ferry.test.Echo/ServerStream")
        request = struct.pack(">III", 1, 8, 0)

        def call(metadata):
            started = time.monotonic()
            try:
                list(stream(request, timeout=5, metadata=metadata))
                return grpc.StatusCode.OK, "", time.monotonic() - started
            except grpc.RpcError as e:
                return e.code(), e.details(), time.monotonic() - started

        code, details, _ = call([("x-chaos", "1"), ("ferry-fault-abort", "DATA_LOSS")])
        assert code == grpc.StatusCode.DATA_LOSS and "asked in ferry-fault-abort" in details, details
        code, _, seconds = call([("x-chaos", "1"), ("ferry-fault-delay", "400ms")])
        assert code == grpc.StatusCode.OK and seconds >= 0.4, seconds
        assert "ferry-fault-delay" not in state.stream_metadata[-1] and "x-chaos" in state.stream_metadata[-1], \
            "a fault request that was honoured is not passed on (the next hop would inject it again)"
        code, details, _ = call([("x-chaos", "1"), ("ferry-fault-delay", "5s")])
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "up to 1s" in details, details
        # Where the route does not allow it, the header is just a header: no fault, forwarded.
        code, _, seconds = call([("ferry-fault-abort", "DATA_LOSS"), ("ferry-fault-delay", "400ms")])
        assert code == grpc.StatusCode.OK and seconds < 0.4, seconds
        assert state.stream_metadata[-1].get("ferry-fault-abort") == "DATA_LOSS"
    assert ferry.metric_sum("ferry_faults_injected_total", 'kind="abort"', 'fault="listeners[0].routes[1].fault"') == 1
    assert ferry.metric_sum("ferry_faults_injected_total", 'kind="delay"', 'fault="listeners[0].routes[1].fault"') == 1
