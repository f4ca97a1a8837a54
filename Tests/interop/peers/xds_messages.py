"""xDS messages encoded by Envoy's own classes (PyPI's xds-protos), for Ferry's Swift decoder tests.

`python Tests/interop/peers/xds_messages.py` writes Tests/FerryXDSTests/EnvoyEncodedMessages.swift:
each message's bytes as Envoy's generated code writes them (deterministic serialization), so
the Swift tests read what a real control plane sends and compare what Ferry writes with what
Envoy would. test_xds_protos.py checks the committed file is what this script writes.
"""
import os
import sys

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "FerryXDSTests", "EnvoyEncodedMessages.swift")

CLA_URL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def endpoint(host, port, health=health_check_pb2.UNKNOWN, weight=None):
    lb = endpoint_components_pb2.LbEndpoint(health_status=health)
    lb.endpoint.address.socket_address.address = host
    lb.endpoint.address.socket_address.port_value = port
    if weight is not None:
        lb.load_balancing_weight.value = weight
    return lb


def echo_assignment():
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="echo")
    zone_a = cla.endpoints.add()
    zone_a.locality.region = "eu"
    zone_a.locality.zone = "eu-a"
    zone_a.load_balancing_weight.value = 50
    zone_a.lb_endpoints.extend([endpoint("10.0.0.1", 8080, health_check_pb2.HEALTHY, weight=3),
                                endpoint("10.0.0.2", 8080, health_check_pb2.UNHEALTHY),
                                endpoint("backend.eu-a.internal", 8081)])
    zone_b = cla.endpoints.add(priority=1)
    zone_b.locality.zone = "eu-b"
    zone_b.lb_endpoints.extend([endpoint("10.0.1.1", 9090, health_check_pb2.HEALTHY),
                                endpoint("10.0.1.2", 9090, health_check_pb2.DRAINING)])
    return cla


def eds_response():
    response = discovery_pb2.DiscoveryResponse(version_info="v7", type_url=CLA_URL, nonce="nonce-3")
    response.resources.add().Pack(echo_assignment())
    wrapped = discovery_pb2.Resource(name="wrapped", version="1")
    small = endpoint_pb2.ClusterLoadAssignment(cluster_name="wrapped")
    small.endpoints.add().lb_endpoints.append(endpoint("::1", 7000))
    wrapped.resource.Pack(small)
    response.resources.add().Pack(wrapped)
    return response


def bad_port_assignment():
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="bad")
    cla.endpoints.add().lb_endpoints.extend([endpoint("10.0.0.1", 80), endpoint("10.0.0.2", 0)])
    return cla


def eds_cluster():
    cluster = cluster_pb2.Cluster(name="echo", type=cluster_pb2.Cluster.EDS, lb_policy=cluster_pb2.Cluster.LEAST_REQUEST)
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    cluster.eds_cluster_config.service_name = "echo-eds"
    cluster.connect_timeout.FromMilliseconds(250)
    threshold = cluster.circuit_breakers.thresholds.add(max_requests={"value": 500})
    threshold.retry_budget.budget_percent.value = 25
    cluster.outlier_detection.consecutive_5xx.value = 3
    cluster.outlier_detection.base_ejection_time.FromSeconds(2)
    cluster.outlier_detection.max_ejection_percent.value = 50
    cluster.outlier_detection.enforcing_success_rate.value = 0
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.initial_stream_window_size.value = 1 << 20
    options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = 200
    cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Pack(options)
    return cluster


def dns_cluster():
    cluster = cluster_pb2.Cluster(name="dns", type=cluster_pb2.Cluster.STRICT_DNS)
    cluster.load_assignment.cluster_name = "dns"
    cluster.load_assignment.endpoints.add().lb_endpoints.append(endpoint("echo.svc.cluster.local", 50051))
    cluster.outlier_detection.SetInParent()
    return cluster


def static_cluster():
    cluster = cluster_pb2.Cluster(name="static", type=cluster_pb2.Cluster.STATIC)
    cluster.load_assignment.endpoints.add().lb_endpoints.extend([endpoint("127.0.0.1", 7001), endpoint("127.0.0.1", 7002, weight=4)])
    return cluster


def maglev_cluster():
    cluster = static_cluster()
    cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
    return cluster


def negative_timeout_cluster():
    cluster = static_cluster()
    cluster.connect_timeout.seconds = -1
    return cluster


def mtls_common(context, san_prefix=None):
    common = context.common_tls_context
    certificate = common.tls_certificates.add()
    certificate.certificate_chain.filename = "/etc/ferry/certs/node.pem"
    certificate.private_key.filename = "/etc/ferry/certs/node-key.pem"
    common.validation_context.trusted_ca.filename = "/etc/ferry/certs/ca.pem"
    common.alpn_protocols.append("h2")
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_3
    san = common.validation_context.match_typed_subject_alt_names.add(san_type=common_pb2.SubjectAltNameMatcher.URI)
    if san_prefix:
        san.matcher.prefix = san_prefix
    else:
        san.matcher.exact = "spiffe://ferry.test/ns/default/sa/echo"
    return context


def tls_cluster():
    """Mutual TLS towards the endpoints, every file named, one SPIFFE ID allowed."""
    cluster = static_cluster()
    cluster.transport_socket.name = "envoy.transport_sockets.tls"
    cluster.transport_socket.typed_config.Pack(mtls_common(tls_pb2.UpstreamTlsContext(sni="echo.default.svc")))
    return cluster


def sds_cluster():
    cluster = static_cluster()
    cluster.transport_socket.name = "envoy.transport_sockets.tls"
    context = tls_pb2.UpstreamTlsContext()
    context.common_tls_context.tls_certificate_sds_secret_configs.add(name="default")
    cluster.transport_socket.typed_config.Pack(context)
    return cluster


def inline_key_cluster():
    cluster = static_cluster()
    cluster.transport_socket.name = "envoy.transport_sockets.tls"
    context = mtls_common(tls_pb2.UpstreamTlsContext())
    context.common_tls_context.tls_certificates[0].private_key.inline_string = "-----BEGIN PRIVATE KEY-----"
    cluster.transport_socket.typed_config.Pack(context)
    return cluster


def mtls_listener():
    """A listener requiring client certificates from one namespace's workloads."""
    result = listener(manager(codec_type=hcm_pb2.HttpConnectionManager.AUTO, route_config=route_table()), name="mtls")
    context = mtls_common(tls_pb2.DownstreamTlsContext(), san_prefix="spiffe://ferry.test/ns/default/")
    context.require_client_certificate.value = True
    socket = result.filter_chains[0].transport_socket
    socket.name = "envoy.transport_sockets.tls"
    socket.typed_config.Pack(context)
    return result


def http1_cluster():
    cluster = static_cluster()
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Pack(options)
    return cluster


def route_table():
    table = route_pb2.RouteConfiguration(name="local")
    echo = table.virtual_hosts.add(name="echo", domains=["echo.svc", "*.echo.svc:8080"])
    slow = echo.routes.add(name="slow")
    slow.match.path = "/echo.Echo/Slow"
    slow.route.cluster = "slow"
    slow.route.timeout.seconds = 0
    slow.route.max_stream_duration.grpc_timeout_header_max.FromSeconds(5)
    slow.route.max_stream_duration.grpc_timeout_header_offset.FromMilliseconds(50)
    canary = echo.routes.add(name="canary")
    canary.match.prefix = "/echo.Echo/"
    canary.match.headers.add(name="x-canary", exact_match="1")
    canary.match.headers.add(name="x-user").string_match.prefix = "team-"
    canary.match.headers.add(name="x-trace", present_match=True)
    for name, weight in [("a", 90), ("b", 10), ("c", 0)]:
        canary.route.weighted_clusters.clusters.add(name=name).weight.value = weight
    rest = echo.routes.add(name="rest")
    rest.match.prefix = "/"
    rest.match.grpc.SetInParent()
    rest.route.cluster = "echo"
    rest.route.timeout.FromSeconds(3)
    rest.route.retry_policy.retry_on = "unavailable, reset,cancelled,retriable-4xx"
    rest.route.retry_policy.num_retries.value = 2
    rest.route.retry_policy.per_try_timeout.FromSeconds(1)
    rest.route.retry_policy.retry_back_off.base_interval.FromMilliseconds(10)
    other = table.virtual_hosts.add(name="any", domains=["*"])
    other.retry_policy.retry_on = "5xx"
    fallback = other.routes.add()
    fallback.match.prefix = ""
    fallback.route.cluster = "default"
    return table


def regex_route_table():
    table = route_pb2.RouteConfiguration(name="regex")
    route = table.virtual_hosts.add(name="h", domains=["*"]).routes.add()
    route.match.safe_regex.regex = "^/a.*"
    route.route.cluster = "x"
    return table


def redirect_route_table():
    table = route_pb2.RouteConfiguration(name="redirect")
    route = table.virtual_hosts.add(name="h", domains=["*"]).routes.add()
    route.match.prefix = "/"
    route.redirect.host_redirect = "elsewhere"
    return table


def negative_timeout_route_table():
    table = route_pb2.RouteConfiguration(name="negative")
    route = table.virtual_hosts.add(name="h", domains=["*"]).routes.add()
    route.match.prefix = "/"
    route.route.cluster = "x"
    route.route.timeout.seconds = -5
    return table


def duplicate_domain_route_table():
    table = route_pb2.RouteConfiguration(name="twice")
    for name in ["one", "two"]:
        route = table.virtual_hosts.add(name=name, domains=["a.svc"]).routes.add()
        route.match.prefix = "/"
        route.route.cluster = name
    return table


def listener(manager, name="ingress"):
    result = listener_pb2.Listener(name=name)
    result.address.socket_address.address = "0.0.0.0"
    result.address.socket_address.port_value = 15001
    result.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(manager)
    return result


def manager(**fields):
    result = hcm_pb2.HttpConnectionManager(stat_prefix="ingress", **fields)
    result.http_filters.add(name="envoy.filters.http.router").typed_config.Pack(router_pb2.Router())
    return result


def rds_listener():
    rds = manager(codec_type=hcm_pb2.HttpConnectionManager.AUTO)
    rds.rds.route_config_name = "local"
    rds.rds.config_source.ads.SetInParent()
    rds.rds.config_source.resource_api_version = 2
    rds.http2_protocol_options.max_concurrent_streams.value = 250
    rds.http2_protocol_options.initial_stream_window_size.value = 1 << 20
    optional = rds.http_filters.add(name="envoy.filters.http.cors", is_optional=True)
    rds.http_filters[0].CopyFrom(optional)  # an optional filter first, then the router
    rds.http_filters[1].name = "envoy.filters.http.router"
    rds.http_filters[1].typed_config.Pack(router_pb2.Router())
    return listener(rds)


def inline_listener():
    inline = manager()
    inline.route_config.CopyFrom(route_table())
    return listener(inline, name="inline")


def http1_listener():
    return listener(manager(codec_type=hcm_pb2.HttpConnectionManager.HTTP1, rds={"route_config_name": "x"}))


def extra_filter_listener():
    with_filter = manager(rds={"route_config_name": "x"})
    with_filter.rds.config_source.ads.SetInParent()
    fault = with_filter.http_filters.add(name="envoy.filters.http.fault")
    router = hcm_pb2.HttpFilter()
    router.CopyFrom(with_filter.http_filters[0])
    with_filter.http_filters[0].CopyFrom(fault)
    with_filter.http_filters[1].CopyFrom(router)
    return listener(with_filter)


def nack_request():
    request = discovery_pb2.DiscoveryRequest(version_info="v6", type_url=CLA_URL, response_nonce="nonce-3",
                                             resource_names=["a", "echo"])
    request.node.id = "ferry~10.0.0.9~pod-1"
    request.node.cluster = "edge"
    request.node.metadata.fields["NAMESPACE"].string_value = "prod"
    request.node.locality.zone = "eu-a"
    request.node.user_agent_name = "ferry"
    request.node.user_agent_version = "0.1.0"
    request.error_detail.code = 3
    request.error_detail.message = "EDS version \"v7\" rejected: endpoints[0]: bad"
    return request


def ack_request():
    return discovery_pb2.DiscoveryRequest(version_info="v7", type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
                                          response_nonce="n1")


MESSAGES = [
    ("edsResponse", "A DiscoveryResponse of two ClusterLoadAssignments, the second in a Resource wrapper.", eds_response()),
    ("badPortAssignment", "A ClusterLoadAssignment whose second endpoint has port 0.", bad_port_assignment()),
    ("oneLbEndpoint", "One LbEndpoint, HEALTHY, weight 2 (the tests repeat it to make large assignments).",
     endpoint("10.1.2.3", 8443, health_check_pb2.HEALTHY, weight=2)),
    ("edsCluster", "An EDS cluster over ADS with LEAST_REQUEST, circuit breakers, outlier detection, HTTP/2 options.",
     eds_cluster()),
    ("dnsCluster", "A STRICT_DNS cluster of one name, with outlier detection at Envoy's defaults.", dns_cluster()),
    ("staticCluster", "A STATIC cluster of two endpoints.", static_cluster()),
    ("maglevCluster", "The STATIC cluster balanced by MAGLEV.", maglev_cluster()),
    ("negativeTimeoutCluster", "The STATIC cluster with connect_timeout -1 s.", negative_timeout_cluster()),
    ("tlsCluster", "The STATIC cluster with mutual TLS: certificate, key and CA files, SNI, one SPIFFE ID, TLS 1.3.", tls_cluster()),
    ("sdsCluster", "The STATIC cluster taking its certificate by SDS.", sds_cluster()),
    ("inlineKeyCluster", "The mutual TLS cluster with its private key inline.", inline_key_cluster()),
    ("mtlsListener", "A listener requiring client certificates whose SPIFFE ID is under spiffe://ferry.test/ns/default/.",
     mtls_listener()),
    ("http1Cluster", "The STATIC cluster asking for HTTP/1.1 upstreams.", http1_cluster()),
    ("routeTable", "A RouteConfiguration of two virtual hosts: paths, headers, a weighted split, timeouts, retries.",
     route_table()),
    ("regexRouteTable", "A route matched by a regular expression.", regex_route_table()),
    ("redirectRouteTable", "A route that redirects.", redirect_route_table()),
    ("negativeTimeoutRouteTable", "A route with a timeout of -5 s.", negative_timeout_route_table()),
    ("duplicateDomainRouteTable", "Two virtual hosts with the same domain.", duplicate_domain_route_table()),
    ("rdsListener", "A listener whose manager takes routes by RDS over ADS, an optional filter before the router.",
     rds_listener()),
    ("inlineListener", "A listener whose manager carries routeTable inline.", inline_listener()),
    ("http1Listener", "A listener serving HTTP/1.1 only.", http1_listener()),
    ("extraFilterListener", "A listener with a fault filter before the router.", extra_filter_listener()),
    ("nackRequest", "A NACK with the node, as the first request of a stream.", nack_request()),
    ("ackRequest", "An ACK of CDS, not the first request.", ack_request()),
]


def swift_file():
    lines = ["// Generated by Tests/interop/peers/xds_messages.py from Envoy's own classes (PyPI's xds-protos);",
             "// do not edit. test_xds_protos.py checks it is up to date.", "", "enum EnvoyEncodedMessages {"]
    for name, doc, message in MESSAGES:
        data = message.SerializeToString(deterministic=True)
        lines.append(f"    /// {doc} ({len(data)} bytes)")
        lines.append(f"    static let {name}: [UInt8] = hex(\"\"\"")
        text = data.hex()
        for start in range(0, len(text), 96):
            lines.append("        " + text[start:start + 96])
        lines.append("        \"\"\")")
        lines.append("")
    lines += [
        "    private static func hex(_ text: String) -> [UInt8] {",
        "        let digits = text.utf8.filter { $0 != 0x0A && $0 != 0x20 }.map { $0 <= 0x39 ? $0 - 0x30 : $0 - 0x57 }",
        "        return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else OUT, "w") as f:
        f.write(swift_file())
