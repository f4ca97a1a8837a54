"""Routing by :authority and gRPC method, per-method policy, and what a request no route takes gets."""
import subprocess
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server


@pytest.fixture
def two_upstreams():
    servers = [make_server(0, name=name) for name in ("alpha", "beta")]
    yield {name: (port, state) for name, (_, port, state) in zip(("alpha", "beta"), servers)}
    for server, _, _ in servers:
        server.stop(grace=None)


def routed_config(port, alpha, beta):
    return f"""
runtime: {{event_loops: 2}}
listeners:
  - name: in
    address: 127.0.0.1:{port}
    routes:
      - {{match: {{authority: beta.test}}, service: beta}}
      - {{match: {{authority: "*.test", method: ferry.test.Echo/Unary}}, service: beta}}
      - {{match: {{method: "ferry.test.Echo/*"}}, service: alpha}}
      - {{match: {{path_prefix: /static/}}, service: beta}}
services:
  alpha:
    endpoints: ["127.0.0.1:{alpha}"]
    methods:
      - {{match: ferry.test.Echo/Sleep, timeout: 50ms}}
  beta:
    endpoints: ["127.0.0.1:{beta}"]
"""


def unary_upstream(target, authority=None):
    options = list(CHANNEL_OPTIONS) + ([("grpc.default_authority", authority)] if authority else [])
    with grpc.insecure_channel(target, options=options) as channel:
        _, call = channel.unary_unary("/ferry.test.Echo/Unary").with_call(b"hi", timeout=5)
        return dict(call.initial_metadata())["x-upstream"]


def client_stream_total(target, authority):
    options = list(CHANNEL_OPTIONS) + [("grpc.default_authority", authority)]
    with grpc.insecure_channel(target, options=options) as channel:
        return channel.stream_unary("/ferry.test.Echo/ClientStream")(iter([b"abc", b"de"]), timeout=5)


def test_requests_go_to_the_most_specific_route(two_upstreams, ferry_factory):
    (alpha, alpha_state), (beta, _) = two_upstreams["alpha"], two_upstreams["beta"]
    port = free_port()
    ferry = ferry_factory(config=routed_config(port, alpha, beta), ports={"in": port})
    assert unary_upstream(ferry.target) == "alpha"                       # 127.0.0.1:port: only the method route
    assert unary_upstream(ferry.target, "beta.test") == "beta"           # exact authority beats everything else
    assert unary_upstream(ferry.target, "x.test:80") == "beta"           # wildcard authority + method
    assert unary_upstream(ferry.target, "X.TEST") == "beta"              # hosts compare case-insensitively
    before = alpha_state.calls
    assert client_stream_total(ferry.target, "x.test") == (5).to_bytes(8, "big")   # *.test has no ClientStream route
    assert alpha_state.calls == before + 1


def test_no_route_is_unimplemented_at_once_and_reaches_no_upstream(two_upstreams, ferry_factory):
    (alpha, alpha_state), (beta, beta_state) = two_upstreams["alpha"], two_upstreams["beta"]
    port = free_port()
    ferry = ferry_factory(config=routed_config(port, alpha, beta), ports={"in": port})
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/other.Service/Get")(b"", timeout=5)
        elapsed = time.monotonic() - t0
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert err.value.details() == f'ferry: no route for 127.0.0.1:{port}/other.Service/Get on listener "in"'
    assert elapsed < 0.5
    assert alpha_state.calls == 0 and beta_state.calls == 0


def test_plain_http_without_a_route_gets_404(two_upstreams, ferry_factory):
    (alpha, _), (beta, _) = two_upstreams["alpha"], two_upstreams["beta"]
    port = free_port()
    ferry_factory(config=routed_config(port, alpha, beta), ports={"in": port})
    # nghttp (nghttp2's client) as the plain HTTP/2 peer.
    out = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{port}/index.html"], capture_output=True, text=True, timeout=20)
    assert ":status: 404" in out.stdout, out.stdout
    assert 'ferry: no route for 127.0.0.1:' in out.stdout


def test_method_timeout_applies_to_a_caller_without_one(two_upstreams, ferry_factory):
    (alpha, alpha_state), (beta, _) = two_upstreams["alpha"], two_upstreams["beta"]
    port = free_port()
    ferry = ferry_factory(config=routed_config(port, alpha, beta), ports={"in": port})
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/ferry.test.Echo/Sleep")(b"")          # no client deadline at all
        elapsed = time.monotonic() - t0
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Whoever ends it (Ferry, or the upstream's C-core holding the propagated 50 ms), it is on time.
    assert 0.045 <= elapsed < 1.0, elapsed
    assert alpha_state.cancelled.wait(5)
    assert 0 < alpha_state.time_remaining[-1] <= 0.05, alpha_state.time_remaining
    # The method's policy only: Unary on the same service has no timeout.
    assert unary_upstream(ferry.target) == "alpha"
