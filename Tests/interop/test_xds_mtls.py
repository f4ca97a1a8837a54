"""Mutual TLS between nodes, driven by xDS: two Ferrys, each configured only by its own ADS
server (peers/ads_server.py). Node A's listener takes the app's plaintext calls; its cluster
reaches node B over mTLS (UpstreamTlsContext: node-a's certificate, the CA, node-b's SPIFFE
ID). Node B's listener requires client certificates (DownstreamTlsContext) from identities
under one namespace and forwards to a grpcio server, which sees node A's identity."""
import shutil
import tempfile

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from ads_server import ADSServer, assignment, cluster, listener, route, route_table, tls_context
from certs import TRUST_DOMAIN as TD
from certs import make_certs
from conftest import CHANNEL_OPTIONS, free_port
from netutil import wait_until
from test_xds import ferry_config


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="ferry-xds-certs-")
    make_certs(d, "node-a", "node-b")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def node_b(port, upstream_port, certs, allowed_prefix):
    tls = tls_context(tls_pb2.DownstreamTlsContext, certs, "node-b", san_prefix=allowed_prefix, require_client_certificate=True)
    return [cluster("app"), assignment("app", [("127.0.0.1", upstream_port)]),
            listener("from-mesh", port, "inbound", tls=tls), route_table("inbound", [route(prefix="/", cluster="app")])]


def node_a(port, node_b_port, certs):
    tls = tls_context(tls_pb2.UpstreamTlsContext, certs, "node-a", san_exact=f"{TD}/ns/default/sa/node-b")
    return [cluster("node-b", tls=tls), assignment("node-b", [("127.0.0.1", node_b_port)]),
            listener("from-app", port, "outbound"), route_table("outbound", [route(prefix="/", cluster="node-b")])]


def test_two_ferrys_configured_by_xds_carry_a_call_over_mtls_and_b_authorizes_by_identity(ferry_factory, grpc_upstream, certs):
    upstream_port, state = grpc_upstream
    ads_a, ads_b = ADSServer(), ADSServer()
    try:
        port_a, port_b = free_port(), free_port()
        ads_b.set_resources(*node_b(port_b, upstream_port, certs, f"{TD}/ns/default/"))
        ads_a.set_resources(*node_a(port_a, port_b, certs))
        admin_a, admin_b = free_port(), free_port()
        ferry_b = ferry_factory(config=ferry_config(ads_b.port, admin_b), ports={"from-mesh": port_b}, admin_port=admin_b)
        ferry_a = ferry_factory(config=ferry_config(ads_a.port, admin_a), ports={"from-app": port_a}, admin_port=admin_a)
        assert not ads_a.nacks() and not ads_b.nacks(), (ads_a.nacks(), ads_b.nacks())
        with grpc.insecure_channel(ferry_a.target, options=CHANNEL_OPTIONS) as channel:
            call = channel.unary_unary("/ferry.test.Echo/Unary")
            assert call(b"over mtls", timeout=5) == b"over mtls"
            assert state.unary_metadata[-1].get("ferry-client-id") == f"{TD}/ns/default/sa/node-a", state.unary_metadata[-1]

            # B now admits only another namespace: A's calls are refused by B's policy.
            ads_b.set_resources(*node_b(port_b, upstream_port, certs, f"{TD}/ns/payments/"))
            assert wait_until(lambda: ads_b.acked("type.googleapis.com/envoy.config.listener.v3.Listener", 2), 5.0)

            def denied():
                try:
                    call(b"x", timeout=5)
                    return False
                except grpc.RpcError as e:
                    return e.code() == grpc.StatusCode.PERMISSION_DENIED
            assert wait_until(denied, 5.0), ferry_b.logs()[-2000:]
        # B's plaintext side is gone: a client without a certificate cannot even handshake.
        with grpc.secure_channel(f"localhost:{port_b}", grpc.ssl_channel_credentials(open(f"{certs}/ca.pem", "rb").read()),
                                 options=CHANNEL_OPTIONS) as channel:
            with pytest.raises(grpc.RpcError) as failed:
                channel.unary_unary("/ferry.test.Echo/Unary")(b"x", timeout=5)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        ads_a.stop()
        ads_b.stop()


def test_a_tls_context_ferry_cannot_honour_is_nacked_and_the_plaintext_listener_keeps_serving(ferry_factory, grpc_upstream, certs):
    upstream_port, _ = grpc_upstream
    ads = ADSServer()
    try:
        port = free_port()
        plain = [cluster("app"), assignment("app", [("127.0.0.1", upstream_port)]),
                 listener("in", port, "routes"), route_table("routes", [route(prefix="/", cluster="app")])]
        ads.set_resources(*plain)
        admin = free_port()
        ferry = ferry_factory(config=ferry_config(ads.port, admin), ports={"in": port}, admin_port=admin)
        sds = tls_pb2.DownstreamTlsContext()
        sds.common_tls_context.tls_certificate_sds_secret_configs.add(name="default")
        ads.set_resources(*plain[:2], listener("in", port, "routes", tls=sds), plain[3])
        assert wait_until(lambda: ads.nacks(), 5.0)
        assert "tls_certificate_sds_secret_configs: is not supported" in ads.nacks()[-1].error_detail
        # A certificate file that is not there: NACKed before it could fail the reload.
        missing = tls_context(tls_pb2.DownstreamTlsContext, certs, "nobody")
        ads.set_resources(*plain[:2], listener("in", port, "routes", tls=missing), plain[3])
        assert wait_until(lambda: len(ads.nacks()) >= 2, 5.0)
        assert f'listener "in": {certs}/nobody.pem cannot be read' in ads.nacks()[-1].error_detail, ads.nacks()[-1].error_detail
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            assert channel.unary_unary("/ferry.test.Echo/Unary")(b"still", timeout=5) == b"still"
    finally:
        ads.stop()
