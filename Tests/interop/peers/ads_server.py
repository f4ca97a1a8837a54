"""A small xDS control plane for the tests: ADS, state of the world, on grpcio and Envoy's own
generated classes (PyPI's xds-protos).

Resources are data (`set_resources` takes the whole set; only the types whose resources
changed get a new version, pushed in Envoy's make-before-break order CDS, EDS, LDS, RDS).
Every request a client sends is recorded (type, version, nonce, names, error_detail) so tests
can check ACKs and NACKs. Nothing here is Ferry-specific: the same server drives Envoy
(`envoy_bootstrap`), which is how the tests know it speaks xDS correctly.
"""
import itertools
import queue
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from xds_messages import endpoint

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ORDER = [CDS, EDS, LDS, RDS]
SHORT = {LDS: "LDS", RDS: "RDS", CDS: "CDS", EDS: "EDS"}
COMPLETE = {LDS, CDS}          # responses of these types carry every resource


# ---- resources as data ----------------------------------------------------------------------

def listener(name, port, route_table, host="127.0.0.1", tls=None):
    """A listener whose HTTP connection manager takes its routes from RDS over ADS; `tls`: a
    DownstreamTlsContext for its filter chain."""
    manager = hcm_pb2.HttpConnectionManager(stat_prefix=name, codec_type=hcm_pb2.HttpConnectionManager.AUTO)
    manager.rds.route_config_name = route_table
    manager.rds.config_source.ads.SetInParent()
    manager.rds.config_source.resource_api_version = 2   # V3
    router = manager.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    out = listener_pb2.Listener(name=name)
    out.address.socket_address.address = host
    out.address.socket_address.port_value = port
    chain = out.filter_chains.add()
    network = chain.filters.add(name="envoy.filters.network.http_connection_manager")
    network.typed_config.Pack(manager)
    if tls is not None:
        chain.transport_socket.name = "envoy.transport_sockets.tls"
        chain.transport_socket.typed_config.Pack(tls)
    return out


def route(prefix=None, method=None, cluster=None, weights=None, timeout=None, retry_on=None, num_retries=None, name="",
          header=None):
    """One route: a path prefix or an exact gRPC method (and a header's exact value), to a
    cluster or weighted clusters."""
    r = route_components_pb2.Route(name=name)
    if header is not None:
        r.match.headers.add(name=header[0]).string_match.exact = header[1]
    if method is not None:
        r.match.path = method
    else:
        r.match.prefix = prefix or "/"
    if weights:
        for cluster_name, weight in weights:
            r.route.weighted_clusters.clusters.add(name=cluster_name).weight.value = weight
    else:
        r.route.cluster = cluster
    if timeout is not None:
        r.route.timeout.FromMilliseconds(int(timeout * 1000))
    if retry_on:
        r.route.retry_policy.retry_on = retry_on
        if num_retries is not None:
            r.route.retry_policy.num_retries.value = num_retries
    return r


def route_table(name, routes, domains=("*",), host_name="all"):
    table = route_pb2.RouteConfiguration(name=name)
    host = table.virtual_hosts.add(name=host_name, domains=list(domains))
    host.routes.extend(routes)
    return table


def cluster(name, connect_timeout=1.0, tls=None):
    """An EDS cluster (endpoints by ADS) speaking HTTP/2 to its endpoints; `tls`: an
    UpstreamTlsContext for its connections."""
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    if tls is not None:
        c.transport_socket.name = "envoy.transport_sockets.tls"
        c.transport_socket.typed_config.Pack(tls)
    c.eds_cluster_config.eds_config.ads.SetInParent()
    c.eds_cluster_config.eds_config.resource_api_version = 2
    c.connect_timeout.FromMilliseconds(int(connect_timeout * 1000))
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Pack(options)
    return c


def assignment(cluster_name, endpoints):
    """`endpoints`: (host, port) pairs, or (host, port, health_status)."""
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    cla.endpoints.add().lb_endpoints.extend(endpoint(*item) for item in endpoints)
    return cla


def tls_context(kind, certs, name, san_exact=None, san_prefix=None, require_client_certificate=None, sni=None):
    """An Upstream- or DownstreamTlsContext (`kind`: tls_pb2's class) of `name`'s certificate
    and key in `certs`, trusting `certs`/ca.pem, matching the peer's URI SAN if asked."""
    context = kind()
    common = context.common_tls_context
    certificate = common.tls_certificates.add()
    certificate.certificate_chain.filename = f"{certs}/{name}.pem"
    certificate.private_key.filename = f"{certs}/{name}-key.pem"
    common.validation_context.trusted_ca.filename = f"{certs}/ca.pem"
    common.alpn_protocols.append("h2")
    if san_exact or san_prefix:
        san = common.validation_context.match_typed_subject_alt_names.add(san_type=common_pb2.SubjectAltNameMatcher.URI)
        if san_exact:
            san.matcher.exact = san_exact
        else:
            san.matcher.prefix = san_prefix
    if require_client_certificate is not None:
        context.require_client_certificate.value = require_client_certificate
    if sni:
        context.sni = sni
    return context


def type_of(message):
    return "type.googleapis.com/" + message.DESCRIPTOR.full_name


def name_of(message):
    return message.cluster_name if type_of(message) == EDS else message.name


# ---- the server -----------------------------------------------------------------------------

@dataclass
class Request:
    type_url: str
    version_info: str
    response_nonce: str
    resource_names: list
    error_detail: str
    node_id: str
    at: float = field(default_factory=time.monotonic)

    @property
    def is_nack(self):
        return bool(self.error_detail)


class _Stream:
    def __init__(self):
        self.outbox = queue.Queue()
        self.subscribed = {}           # type -> set of names (empty: all)
        self.sent_versions = {}        # type -> version last sent
        self.closed = False


class ADSServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.resources = {t: {} for t in ORDER}     # type -> name -> message
        self.versions = {t: 0 for t in ORDER}
        self.raw_overrides = {}                      # type -> list of Any to send instead (hostile tests)
        self.requests = []
        self.streams = []
        self.nonces = itertools.count(1)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  options=[("grpc.max_send_message_length", 64 << 20)])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        with self.lock:
            for stream in self.streams:
                stream.closed = True
                stream.outbox.put(None)
        self.server.stop(grace=None)

    # ---- what tests call

    def set_resources(self, *messages):
        """The whole set; types whose resources changed get a new version and are pushed, make
        before break: clusters (old and new together) and endpoints, then listeners and routes,
        then, once no route names them, the clusters removed."""
        by_type = {t: {} for t in ORDER}
        for message in messages:
            by_type[type_of(message)][name_of(message)] = message
        with self.lock:
            final_clusters = by_type[CDS]
            by_type[CDS] = {**self.resources[CDS], **final_clusters}
            self._update(by_type)
            if final_clusters != self.resources[CDS]:
                self._update({CDS: final_clusters})

    def _update(self, by_type):
        changed = [t for t in ORDER if t in by_type and by_type[t] != self.resources[t]]
        for t in changed:
            self.resources[t] = by_type[t]
            self.versions[t] += 1
        for stream in self.streams:
            for t in changed:
                self._send(stream, t)

    def push_raw(self, type_url, anys, version):
        """Sends a response of these (possibly broken) resources as `version` to every stream."""
        with self.lock:
            for stream in self.streams:
                nonce = str(next(self.nonces))
                response = discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url, nonce=nonce)
                response.resources.extend(anys)
                stream.outbox.put(response)

    def requests_of(self, type_url):
        with self.lock:
            return [r for r in self.requests if r.type_url == type_url]

    def nacks(self):
        with self.lock:
            return [r for r in self.requests if r.is_nack]

    def acked(self, type_url, version):
        """Whether a client ACKed `version` of `type_url` (a request with that version and no error)."""
        return any(r.version_info == str(version) and not r.is_nack for r in self.requests_of(type_url))

    def version(self, type_url):
        with self.lock:
            return self.versions[type_url]

    @property
    def open_streams(self):
        with self.lock:
            return sum(not s.closed for s in self.streams)

    # ---- the protocol

    def _send(self, stream, type_url):
        if type_url not in stream.subscribed:
            return
        wanted = stream.subscribed[type_url]
        held = self.resources[type_url]
        if type_url in COMPLETE or not wanted:
            names = sorted(held)
        else:
            names = sorted(n for n in wanted if n in held)
            if not names:
                return
        response = discovery_pb2.DiscoveryResponse(version_info=str(self.versions[type_url]), type_url=type_url,
                                                   nonce=str(next(self.nonces)))
        for name in names:
            response.resources.add().Pack(held[name])
        stream.sent_versions[type_url] = self.versions[type_url]
        stream.outbox.put(response)

    def StreamAggregatedResources(self, request_iterator, context):
        stream = _Stream()
        with self.lock:
            self.streams.append(stream)
        node = {"id": ""}

        def read():
            try:
                for request in request_iterator:
                    if request.HasField("node"):
                        node["id"] = request.node.id
                    record = Request(request.type_url, request.version_info, request.response_nonce,
                                     list(request.resource_names), request.error_detail.message, node["id"])
                    with self.lock:
                        self.requests.append(record)
                        names = set(request.resource_names)
                        first = request.type_url not in stream.subscribed
                        changed = stream.subscribed.get(request.type_url) != names
                        stream.subscribed[request.type_url] = names
                        # A first request, or new names, is answered; an ACK or NACK is not.
                        if first or (changed and not request.error_detail.message):
                            self._send(stream, request.type_url)
            except Exception:
                pass
            finally:
                stream.outbox.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while context.is_active():
                try:
                    response = stream.outbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                if response is None:
                    break
                yield response
        finally:
            stream.closed = True
