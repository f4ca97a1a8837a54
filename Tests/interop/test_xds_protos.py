"""Ferry's xDS subset (protos/xds) against Envoy's own API as PyPI's xds-protos generates it.

Every message, field and enum value in Ferry's files must exist in Envoy's with the same full
name, number, type, cardinality and oneof, so the bytes Ferry reads and writes are Envoy's. A
field Ferry declares `bytes` where Envoy's is a message is one Ferry only notes the presence
of (the same length-delimited bytes on the wire).
"""
import importlib
import os
import subprocess
import sys
import tempfile

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTOS = os.path.join(ROOT, "protos", "xds")

ENVOY_MODULES = [
    "envoy.service.discovery.v3.discovery_pb2",
    "envoy.config.core.v3.base_pb2",
    "envoy.config.core.v3.address_pb2",
    "envoy.config.core.v3.config_source_pb2",
    "envoy.config.core.v3.protocol_pb2",
    "envoy.config.core.v3.health_check_pb2",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.listener.v3.listener_components_pb2",
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.config.route.v3.route_components_pb2",
    "envoy.type.matcher.v3.string_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.cluster.v3.outlier_detection_pb2",
    "envoy.config.cluster.v3.circuit_breaker_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.config.endpoint.v3.endpoint_components_pb2",
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    "envoy.extensions.transport_sockets.tls.v3.common_pb2",
    "google.rpc.status_pb2",
]

F = descriptor_pb2.FieldDescriptorProto


def ferry_files():
    files = sorted(os.path.relpath(os.path.join(d, f), PROTOS)
                   for d, _, names in os.walk(PROTOS) for f in names if f.endswith(".proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTOS, "--include_imports", f"--descriptor_set_out={out}", *files],
                       check=True, cwd=PROTOS)
        descriptor_set = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            descriptor_set.ParseFromString(f.read())
    return descriptor_set.file


def walk(prefix, messages):
    for message in messages:
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from walk(name, message.nested_type)


def enums_of(prefix, file_or_message):
    for enum in file_or_message.enum_type:
        yield f"{prefix}.{enum.name}", enum
    for message in getattr(file_or_message, "message_type", []) or getattr(file_or_message, "nested_type", []):
        yield from enums_of(f"{prefix}.{message.name}", message)


@pytest.fixture(scope="module")
def envoy_pool():
    for module in ENVOY_MODULES:
        importlib.import_module(module)
    return descriptor_pool.Default()


@pytest.fixture(scope="module")
def files():
    return ferry_files()


def test_every_field_is_envoys(files, envoy_pool):
    checked = 0
    problems = []
    for file in files:
        if file.name.startswith("google/protobuf/"):
            continue
        for full_name, message in walk(file.package, file.message_type):
            envoy = envoy_pool.FindMessageTypeByName(full_name)
            by_number = {f.number: f for f in envoy.fields}
            for field in message.field:
                theirs = by_number.get(field.number)
                where = f"{full_name}.{field.name} = {field.number}"
                if theirs is None:
                    problems.append(f"{where}: Envoy has no field {field.number}")
                    continue
                if theirs.name != field.name:
                    problems.append(f"{where}: Envoy calls field {field.number} {theirs.name}")
                repeated = field.label == F.LABEL_REPEATED
                if repeated != theirs_is_repeated(theirs):
                    problems.append(f"{where}: repeated {repeated}, Envoy's {not repeated}")
                if field.type == F.TYPE_BYTES and theirs.type == theirs.TYPE_MESSAGE:
                    pass  # noted, not decoded
                elif field.type != theirs.type:
                    problems.append(f"{where}: type {field.type}, Envoy's {theirs.type}")
                elif field.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
                    ours = field.type_name.lstrip(".")
                    envoys = (theirs.message_type or theirs.enum_type).full_name
                    if ours != envoys:
                        problems.append(f"{where}: of {ours}, Envoy's of {envoys}")
                our_oneof = message.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None
                their_oneof = theirs.containing_oneof.name if theirs.containing_oneof else None
                if our_oneof != their_oneof:
                    problems.append(f"{where}: in oneof {our_oneof}, Envoy's in {their_oneof}")
                checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 150, checked


def theirs_is_repeated(field):
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def test_every_enum_value_is_envoys(files, envoy_pool):
    problems = []
    checked = 0
    for file in files:
        if file.name.startswith("google/protobuf/"):
            continue
        for full_name, enum in enums_of(file.package, file):
            envoy = envoy_pool.FindEnumTypeByName(full_name)
            for value in enum.value:
                theirs = envoy.values_by_name.get(value.name)
                if theirs is None or theirs.number != value.number:
                    problems.append(f"{full_name}.{value.name} = {value.number}: Envoy's is "
                                    f"{theirs.number if theirs else 'missing'}")
                checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 25, checked


def test_bytes_written_by_envoys_classes_read_the_same_through_ferrys_subset(files):
    """A Listener with an inline route table, built with Envoy's classes, parsed with Ferry's descriptors."""
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
    from google.protobuf import message_factory

    manager = hcm.HttpConnectionManager(stat_prefix="in")
    vhost = manager.route_config.virtual_hosts.add(name="all", domains=["*"])
    route = vhost.routes.add()
    route.match.prefix = "/echo.Echo/"
    route.route.weighted_clusters.clusters.add(name="a").weight.value = 70
    route.route.timeout.seconds = 3
    listener = listener_pb2.Listener(name="ingress")
    listener.address.socket_address.address = "0.0.0.0"
    listener.address.socket_address.port_value = 8443
    listener.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(manager)

    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    Listener = message_factory.GetMessageClass(pool.FindMessageTypeByName("envoy.config.listener.v3.Listener"))
    Manager = message_factory.GetMessageClass(pool.FindMessageTypeByName(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"))
    ours = Listener.FromString(listener.SerializeToString())
    assert ours.name == "ingress" and ours.address.socket_address.port_value == 8443
    any_config = ours.filter_chains[0].filters[0].typed_config
    assert any_config.type_url == "type.googleapis.com/" + Manager.DESCRIPTOR.full_name
    ours_manager = Manager.FromString(any_config.value)
    ours_route = ours_manager.route_config.virtual_hosts[0].routes[0]
    assert ours_route.match.prefix == "/echo.Echo/"
    assert ours_route.route.weighted_clusters.clusters[0].weight.value == 70
    assert ours_route.route.timeout.seconds == 3
    # And back: what Ferry's subset writes, Envoy's classes read the same.
    assert listener_pb2.Listener.FromString(ours.SerializeToString()) == listener


def test_the_swift_tests_read_what_envoys_classes_write_today(tmp_path):
    """Tests/FerryXDSTests/EnvoyEncodedMessages.swift is what peers/xds_messages.py makes now."""
    out = tmp_path / "EnvoyEncodedMessages.swift"
    subprocess.run([sys.executable, os.path.join(HERE, "peers", "xds_messages.py"), str(out)], check=True)
    committed = os.path.join(ROOT, "Tests", "FerryXDSTests", "EnvoyEncodedMessages.swift")
    with open(committed) as f:
        assert out.read_text() == f.read(), "run: .venv/bin/python Tests/interop/peers/xds_messages.py"
