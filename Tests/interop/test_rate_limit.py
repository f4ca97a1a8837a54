"""Local rate limits with grpcio clients and upstreams: a service's limit holds across both
event loops over 10 s, a method's limit on top of it, refusals are RESOURCE_EXHAUSTED at once,
named and counted, and the upstream never sees a refused call."""
import struct
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server
from load import Load


@pytest.fixture
def upstream():
    server, port, state = make_server(0, name="limited")
    yield port, state
    server.stop(grace=None)


def start(ferry_factory, port, service_limit, methods=""):
    listen, admin = free_port(), free_port()
    config = f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: app}}
services:
  app:
    endpoints: ["127.0.0.1:{port}"]
    {service_limit}
    {methods}
"""
    return ferry_factory(config=config, ports={"in": listen}, admin_port=admin)



def test_a_service_limit_admits_its_rate_across_both_loops_over_10_seconds(upstream, ferry_factory):
    port, state = upstream
    ferry = start(ferry_factory, port, "rate_limit: {rate: 50/s, burst: 10}")
    # Eight callers on two connections ask far more than 50/s for 10 s.
    load = Load(ferry.target, threads=8, timeout=5).start()
    time.sleep(10)
    load.stop()
    refused = [f for f in load.failures if f[1] == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert len(refused) == len(load.failures), load.failures[:3]
    assert all("over its rate limit of 50/s (burst 10) (services.app.rate_limit)" in f[2] for f in refused), refused[:3]
    offered = load.ok + len(refused)
    assert offered > 2 * 50 * 10, f"the load must ask more than the limit: {load.summary()}"
    # Admitted: the burst, then 50 a second over the load's run. The clock is the wall's, not
    # the CPU's: a busy machine slows the callers, not the tokens (they ask 4x the limit or more).
    rate = (load.ok - 10) / load.elapsed
    print(f"rate limit 50/s burst 10: {load.ok} admitted of {offered} in {load.elapsed:.2f} s: {rate:.2f}/s")
    assert abs(rate - 50) <= 50 * 0.05, f"{load.ok} admitted in {load.elapsed:.2f} s: {rate:.1f}/s; {load.summary()}"
    assert ferry.metric_sum("ferry_rate_limited_total", 'service="app"', 'limit="services.app"') == len(refused)
    assert len(state.unary_metadata) == load.ok, "a refused call never reaches the upstream"


def test_a_method_limit_applies_to_its_method_on_top_of_the_service_limit(upstream, ferry_factory):
    port, _ = upstream
    ferry = start(ferry_factory, port, "rate_limit: {rate: 1000/s}",
                  "methods: [{match: ferry.test.Echo/Unary, rate_limit: {rate: 1/m, burst: 3}}]")
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        unary = channel.unary_unary("/ferry.test.Echo/Unary")
        codes = []
        for _ in range(6):
            try:
                unary(b"x", timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
                assert "services.app.methods[0].rate_limit" in e.details(), e.details()
        assert codes == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        # Another method of the service is not held by the method's bucket.
        stream = channel.unary_stream("/ferry.test.Echo/ServerStream")
        for _ in range(5):
            assert len(list(stream(struct.pack(">III", 1, 8, 0), timeout=5))) == 1
    assert ferry.metric_sum("ferry_rate_limited_total", 'limit="services.app.methods[0]"') == 3
