"""Ferry driven by an xDS control plane: the ADS server in peers/ads_server.py (grpcio and
Envoy's own classes from xds-protos) sends listeners, routes, clusters and endpoints; grpcio
calls go through Ferry to grpcio upstreams. The same server drives a real Envoy
(test_xds_envoy.py), which is how these tests know the server speaks xDS correctly."""
import time

import grpc
import pytest

from ads_server import ADSServer, CDS, EDS, LDS, RDS, assignment, cluster, listener, route, route_table
from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server
from load import Load, fixed_calls
from netutil import wait_until


@pytest.fixture
def upstreams():
    servers = {name: make_server(0, name=name) for name in ("alpha", "beta", "gamma")}
    yield {name: port for name, (_, port, _) in servers.items()}
    for server, _, _ in servers.values():
        server.stop(grace=None)


@pytest.fixture
def ads():
    server = ADSServer()
    yield server
    server.stop()


def ferry_config(ads_port, admin_port, file_part=""):
    return f"""admin: {{address: 127.0.0.1:{admin_port}}}
runtime: {{event_loops: 2, drain_timeout: 5s}}
xds:
  server: 127.0.0.1:{ads_port}
  node: {{id: ferry-test-node, cluster: interop, metadata: {{role: sidecar}}}}
{file_part}"""


def resources(port, upstreams, target="alpha", routes=None):
    """Clusters alpha, beta, gamma (one endpoint each, by EDS) and a listener on `port` whose
    route table sends everything to `target`."""
    items = []
    for name, upstream_port in upstreams.items():
        items += [cluster(name), assignment(name, [("127.0.0.1", upstream_port)])]
    items += [listener("ingress", port, "routes"),
              route_table("routes", routes if routes is not None else [route(prefix="/", cluster=target)])]
    return items


def _varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def call(target, path="/ferry.test.Echo/Unary", timeout=5, authority=None):
    options = list(CHANNEL_OPTIONS) + ([("grpc.default_authority", authority)] if authority else [])
    with grpc.insecure_channel(target, options=options) as channel:
        _, rpc = channel.unary_unary(path).with_call(b"hello", timeout=timeout)
        return dict(rpc.initial_metadata()).get("x-upstream")


def start(ferry_factory, ads, upstreams, **kwargs):
    port, admin = free_port(), free_port()
    ads.set_resources(*resources(port, upstreams, **kwargs))
    ferry = ferry_factory(config=ferry_config(ads.port, admin), ports={"ingress": port}, admin_port=admin)
    return ferry, port


def test_initial_config_from_the_control_plane_routes_calls_and_every_response_is_acked(ferry_factory, ads, upstreams):
    ferry, port = start(ferry_factory, ads, upstreams)
    assert call(ferry.target) == "alpha"
    for type_url in (CDS, EDS, LDS, RDS):
        assert wait_until(lambda: ads.acked(type_url, 1), 5.0), (type_url, ads.requests_of(type_url))
    assert not ads.nacks()
    first = ads.requests[0]
    assert first.node_id == "ferry-test-node"
    # EDS and RDS are asked for by name, as the clusters and the listener name them.
    assert sorted(ads.requests_of(EDS)[-1].resource_names) == ["alpha", "beta", "gamma"]
    assert ads.requests_of(RDS)[-1].resource_names == ["routes"]
    status, body = ferry.admin("/config")
    assert status == 200, body
    import json
    config = json.loads(body)
    assert config["from_xds"]["listeners"] == {"ingress": "LDS 1, RDS 1"}, config["from_xds"]
    assert config["from_xds"]["services"]["alpha"] == "CDS 1, EDS 1"
    assert any("listener ingress on 127.0.0.1:%d (from xDS: LDS 1, RDS 1)" % port in line for line in config["summary"])
    assert ferry.admin("/ready")[0] == 200
    assert ferry.metric_sum("ferry_xds_connected") == 1
    assert ferry.metric_sum("ferry_xds_responses_total", 'type="LDS"', 'result="accepted"') == 1
    assert ferry.metric_sum("ferry_xds_resources", 'type="EDS"') == 3


def test_with_the_control_plane_not_up_yet_ferry_starts_unready_and_takes_its_config_once_it_comes(ferry_factory, upstreams):
    ads_port, admin, port = free_port(), free_port(), free_port()
    ferry = ferry_factory(config=ferry_config(ads_port, admin), ports={"admin": admin}, admin_port=admin)
    status, body = ferry.admin("/ready")
    assert status == 503 and "waiting for the first listeners and clusters" in body, body
    time.sleep(1.5)
    ads = ADSServer(port=ads_port)
    try:
        ads.set_resources(*resources(port, upstreams))
        assert wait_until(lambda: ferry.admin("/ready")[0] == 200, 20.0), ferry.logs()[-2000:]
        assert call(f"127.0.0.1:{port}") == "alpha"
    finally:
        ads.stop()


def test_routes_clusters_and_endpoints_change_under_load_with_no_failed_call(ferry_factory, ads, upstreams):
    ferry, port = start(ferry_factory, ads, upstreams)
    load = Load(ferry.target, threads=6).start()
    try:
        time.sleep(0.5)
        for target in ("beta", "gamma", "alpha", "beta"):
            changed = time.monotonic()
            ads.set_resources(*resources(port, upstreams, target=target))
            assert wait_until(lambda: load.first_call_to(target, changed), 5.0), load.summary()
            time.sleep(0.4)
            assert set(load.upstreams_since(time.monotonic() - 0.2)) == {target}, load.summary()
        # Endpoints: the alpha cluster moves to gamma's server, by EDS alone.
        items = resources(port, upstreams, target="alpha")
        items = [m for m in items if not (hasattr(m, "cluster_name") and m.cluster_name == "alpha")]
        items.append(assignment("alpha", [("127.0.0.1", upstreams["gamma"])]))
        changed = time.monotonic()
        ads.set_resources(*items)
        assert wait_until(lambda: load.first_call_to("gamma", changed), 5.0), load.summary()
        # A cluster removed with the route that used it; a new route to a new one.
        items = resources(port, {"beta": upstreams["beta"]}, target="beta")
        changed = time.monotonic()
        ads.set_resources(*items)
        assert wait_until(lambda: load.first_call_to("beta", changed), 5.0), load.summary()
    finally:
        load.stop()
    assert load.ok > 100 and not load.failures, load.summary() + f" {load.failures[:3]}"
    assert not ads.nacks()


def test_weighted_clusters_split_ten_thousand_calls_within_a_few_percent(ferry_factory, ads, upstreams):
    ferry, port = start(ferry_factory, ads, upstreams,
                        routes=[route(prefix="/", weights=[("alpha", 70), ("beta", 20), ("gamma", 10)])])
    outcomes = fixed_calls(ferry.target, 10_000, 8)
    failed = [o for o in outcomes if o[2]]
    assert not failed, failed[:3]
    counts = {name: sum(1 for o in outcomes if o[1] == name) for name in ("alpha", "beta", "gamma")}
    for name, share in (("alpha", 0.70), ("beta", 0.20), ("gamma", 0.10)):
        assert abs(counts[name] / 10_000 - share) < 0.03, counts


def test_an_invalid_resource_is_nacked_naming_what_is_wrong_and_the_old_config_keeps_serving(ferry_factory, ads, upstreams):
    ferry, port = start(ferry_factory, ads, upstreams)
    assert call(ferry.target) == "alpha"
    cases = [
        ([route(prefix="/", cluster="nowhere")], 'cluster "nowhere" does not exist'),
        ([route(prefix="/", cluster="beta", timeout=-1)], "timeout"),
        ([route(method="/not-a-grpc-method", cluster="beta")], "match.path"),
    ]
    for routes, expected in cases:
        before = len(ads.nacks())
        items = resources(port, upstreams)
        items[-1] = route_table("routes", routes)
        ads.set_resources(*items)
        assert wait_until(lambda: len(ads.nacks()) > before, 5.0), ads.requests_of(RDS)
        nack = ads.nacks()[-1]
        assert nack.type_url == RDS and expected in nack.error_detail, nack
        # A NACK carries the last version accepted, not the rejected one.
        assert nack.version_info == "1", nack
        assert call(ferry.target) == "alpha"
    assert ferry.count_in_logs("xDS response rejected") == len(cases)
    # A good version after the bad ones is taken.
    ads.set_resources(*resources(port, upstreams, target="gamma"))
    assert wait_until(lambda: call(ferry.target) == "gamma", 5.0)


def test_a_resource_of_an_unknown_type_and_a_million_endpoints_never_stall_the_data_path(ferry_factory, ads, upstreams):
    from google.protobuf import any_pb2, duration_pb2
    ferry, port = start(ferry_factory, ads, upstreams)
    load = Load(ferry.target, threads=4).start()
    try:
        unknown = any_pb2.Any()
        unknown.Pack(duration_pb2.Duration(seconds=1))
        # A response of a type nobody asked for is logged and ignored (answering it would
        # subscribe to it); a resource of an unknown type inside a Listener response is NACKed.
        ads.push_raw("type.googleapis.com/google.protobuf.Duration", [unknown], "x")
        ads.push_raw(LDS, [unknown], "x")
        assert wait_until(lambda: ads.nacks(), 10.0)
        assert ads.nacks()[-1].type_url == LDS
        assert "is a type.googleapis.com/google.protobuf.Duration in a response of LDS" in ads.nacks()[-1].error_detail
        # 1,000,000 endpoints in one assignment (22 MB): refused while counting, never taken in.
        # Written as protobuf bytes directly (a million Python messages take too long).
        def delimited(field_number, payload):
            return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload
        one = assignment("alpha", [("10.0.0.1", 80)]).endpoints[0].lb_endpoints[0].SerializeToString()
        locality = delimited(2, one) * 1_000_000
        packed = any_pb2.Any(type_url=EDS, value=delimited(1, b"alpha") + delimited(2, locality))
        before = len(ads.nacks())
        ads.push_raw(EDS, [packed], "huge")
        assert wait_until(lambda: len(ads.nacks()) > before, 30.0)
        assert "100000" in ads.nacks()[-1].error_detail.replace(",", ""), ads.nacks()[-1].error_detail[:300]
        time.sleep(0.5)
    finally:
        load.stop()
    assert load.ok > 50 and not load.failures, load.summary()
    assert ferry.alive()
    assert call(ferry.target) == "alpha"


def test_the_control_plane_killed_and_restarted_ferry_serves_the_last_config_then_resubscribes(ferry_factory, upstreams):
    ads = ADSServer()
    ads_port = ads.port
    try:
        ferry, port = start(ferry_factory, ads, upstreams)
        assert call(ferry.target) == "alpha"
    finally:
        ads.stop()
    # Away: the last configuration keeps serving.
    load = Load(ferry.target, threads=4).start()
    time.sleep(2.0)
    restarted = ADSServer(port=ads_port)
    try:
        restarted.set_resources(*resources(port, upstreams, target="beta"))
        changed = time.monotonic()
        assert wait_until(lambda: load.first_call_to("beta", changed), 40.0), load.summary()
        load.stop()
        assert not load.failures, load.summary()
        # The new stream starts with the node and the versions accepted before, and asks again.
        first = [r for r in restarted.requests if r.node_id]
        assert first and first[0].node_id == "ferry-test-node"
        assert restarted.requests_of(LDS)[0].version_info == "1"
    finally:
        restarted.stop()
    assert ferry.count_in_logs("xDS stream ended") >= 1


def test_ten_thousand_endpoints_in_one_cluster_updated_at_once(ferry_factory, ads, upstreams):
    ferry, port = start(ferry_factory, ads, upstreams)
    load = Load(ferry.target, threads=4).start()
    try:
        # 9,999 endpoints that refuse connections (a closed port) and one real one: calls
        # must still find the real one (failed connects are passed over).
        endpoints = [("127.0.0.%d" % (2 + i // 250), 20000 + i % 250) for i in range(9_999)]
        items = [m for m in resources(port, upstreams) if not (hasattr(m, "cluster_name") and m.cluster_name == "beta")]
        items.append(assignment("beta", endpoints[:1] + [("127.0.0.1", upstreams["beta"])] + endpoints[1:]))
        ads.set_resources(*items)
        assert wait_until(lambda: ads.acked(EDS, 2), 10.0), ads.requests_of(EDS)[-3:]
        time.sleep(0.5)
    finally:
        load.stop()
    assert not load.failures, load.summary()
    assert ferry.alive() and call(ferry.target) == "alpha"
    status, body = ferry.admin("/endpoints")
    assert status == 200 and body.count("127.0.0.") >= 10_000, body[:500]
