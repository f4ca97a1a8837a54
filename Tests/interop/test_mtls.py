"""Mutual TLS, workload identity and authorization, against peers nobody here wrote: grpcio
clients and servers with TLS credentials (gRPC C-core's own TLS stack), `openssl s_client`, and
two Ferrys in a row (outbound on plaintext from the app, mTLS between them)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

from certs import TRUST_DOMAIN as TD
from certs import make_certs
from conftest import CHANNEL_OPTIONS, Ferry, ferry_binary, free_port, method
from echo_server import make_server


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="ferry-certs-")
    make_certs(d, "client", "node-a", "node-b", "server=ns/prod/sa/server", "frontend=ns/shop/sa/frontend")
    make_certs(d, "old", extra=["--expired"])
    make_certs(d, "rogue", extra=["--ca", "rogue-ca"])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def client_credentials(certs, name="client", ca="ca"):
    key = read(f"{certs}/{name}-key.pem") if name else None
    chain = read(f"{certs}/{name}.pem") if name else None
    return grpc.ssl_channel_credentials(root_certificates=read(f"{certs}/{ca}.pem"), private_key=key, certificate_chain=chain)


def tls_channel(port, certs, name="client", ca="ca"):
    return grpc.secure_channel(f"localhost:{port}", client_credentials(certs, name, ca), options=CHANNEL_OPTIONS)


@pytest.fixture
def started():
    ferrys = []
    yield ferrys
    for f in ferrys:
        alive = f.alive()
        code = f.stop()
        assert alive, "ferry exited during the test:\n" + f.logs()
        assert code == 0, f"ferry exited {code} on SIGTERM:\n" + f.logs()


def inbound_config(port, upstream_port, certs, admin_port, authorization="", routes=None, client_certificates="required"):
    listener_routes = routes or "    service: app"
    return f"""
admin: {{address: 127.0.0.1:{admin_port}, metrics: true}}
runtime: {{event_loops: 2, drain_timeout: 2s}}
listeners:
  - name: inbound
    address: 127.0.0.1:{port}
{listener_routes}
    tls:
      certificate: {certs}/server.pem
      key: {certs}/server-key.pem
      client_ca: {certs}/ca.pem
      client_certificates: {client_certificates}
{authorization}
services:
  app:
    endpoints: ["127.0.0.1:{upstream_port}"]
"""


def start_inbound(started, upstream_port, certs, **kwargs):
    port, admin = free_port(), free_port()
    ferry = Ferry(config=inbound_config(port, upstream_port, certs, admin, **kwargs), ports={"inbound": port}, admin_port=admin)
    started.append(ferry)
    return ferry


def metric(ferry, name, **labels):
    _, text = ferry.admin("/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{" + want) or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_grpcio_client_with_a_certificate_is_served_and_its_identity_reaches_the_upstream(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    ferry = start_inbound(started, upstream_port, certs)
    with tls_channel(ferry.port, certs) as channel:
        # A caller cannot pass itself off as someone else: its own ferry-client-id is replaced.
        reply = method(channel, "unary_unary", "Unary")(b"hello", timeout=5,
                                                         metadata=[("ferry-client-id", f"{TD}/ns/admin/sa/root")])
    assert reply == b"hello"
    seen = state.unary_metadata[-1]
    assert seen.get("ferry-client-id") == f"{TD}/ns/default/sa/client", seen


@pytest.mark.parametrize("name,ca,why", [
    (None, "ca", "no client certificate"),
    ("rogue", "ca", "a certificate from another CA"),
    ("old", "ca", "an expired certificate"),
])
def test_a_client_without_a_valid_certificate_fails_the_handshake_and_others_are_served(grpc_upstream, started, certs, name, ca, why):
    upstream_port, state = grpc_upstream
    ferry = start_inbound(started, upstream_port, certs)
    calls_before = state.calls
    with tls_channel(ferry.port, certs, name=name, ca=ca) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            method(channel, "unary_unary", "Unary")(b"x", timeout=3)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, why
    assert state.calls == calls_before, "the upstream saw a call from a client that failed the handshake"
    deadline = time.time() + 5
    while "TLS handshake failed" not in ferry.logs() and time.time() < deadline:
        time.sleep(0.05)
    assert "TLS handshake failed" in ferry.logs() and 'listener=inbound' in ferry.logs(), ferry.logs()
    assert metric(ferry, "ferry_tls_handshake_failures_total", listener="inbound") >= 1
    with tls_channel(ferry.port, certs) as channel:
        assert method(channel, "unary_unary", "Unary")(b"fine", timeout=5) == b"fine"


def test_a_grpcio_client_expecting_another_name_refuses_ferrys_certificate(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    ferry = start_inbound(started, upstream_port, certs)
    options = CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", "payments.example")]
    with grpc.secure_channel(f"localhost:{ferry.port}", client_credentials(certs), options=options) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            method(channel, "unary_unary", "Unary")(b"x", timeout=3)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert state.calls == 0
    with tls_channel(ferry.port, certs) as channel:
        assert method(channel, "unary_unary", "Unary")(b"fine", timeout=5) == b"fine"


def test_a_policy_denies_identities_it_does_not_list_with_permission_denied(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    routes = f"""    routes:
      - match: {{method: ferry.test.Echo/Unary}}
        service: app
        authorization: {{allow: ["{TD}/ns/shop/*"]}}
      - {{service: app}}"""
    policy = f"""    authorization:
      allow: ["{TD}/ns/default/sa/client", "{TD}/ns/shop/sa/frontend"]"""
    ferry = start_inbound(started, upstream_port, certs, routes=routes, authorization=policy)
    before = state.calls
    with tls_channel(ferry.port, certs, "client") as channel:
        # The listener's policy lets the client call Bidi; the Unary route's own policy does not.
        assert list(method(channel, "stream_stream", "Bidi")(iter([b"a"]), timeout=5)) == [b"a"]
        with pytest.raises(grpc.RpcError) as denied:
            method(channel, "unary_unary", "Unary")(b"x", timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "listeners.inbound.routes[0].authorization" in denied.value.details()
    assert f"{TD}/ns/default/sa/client" in denied.value.details()
    assert state.calls == before + 1, "the denied call reached the upstream"
    with tls_channel(ferry.port, certs, "frontend") as channel:
        assert method(channel, "unary_unary", "Unary")(b"ok", timeout=5) == b"ok"
    with tls_channel(ferry.port, certs, "node-a") as channel:
        with pytest.raises(grpc.RpcError) as denied:
            list(method(channel, "stream_stream", "Bidi")(iter([b"a"]), timeout=5))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "listeners.inbound.authorization" in denied.value.details()
    assert metric(ferry, "ferry_authorization_denied_total", listener="inbound",
                  policy="listeners.inbound.routes[0].authorization") == 1
    assert "call denied by authorization policy" in ferry.logs()


def test_optional_client_certificates_let_unauthenticated_callers_in_only_where_a_policy_says(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    policy = f"""    authorization:
      allow: ["{TD}"]
      allow_unauthenticated: false"""
    routes = """    routes:
      - match: {method: ferry.test.Echo/Bidi}
        service: app
        authorization: {allow_unauthenticated: true}
      - {service: app}"""
    ferry = start_inbound(started, upstream_port, certs, routes=routes, authorization=policy, client_certificates="optional")
    with tls_channel(ferry.port, certs, name=None) as channel:
        assert list(method(channel, "stream_stream", "Bidi")(iter([b"a"]), timeout=5)) == [b"a"]
        with pytest.raises(grpc.RpcError) as denied:
            method(channel, "unary_unary", "Unary")(b"x", timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "unauthenticated" in denied.value.details()
    with tls_channel(ferry.port, certs, "client") as channel:
        assert method(channel, "unary_unary", "Unary")(b"in", timeout=5) == b"in"


def s_client(port, *args, cert=None, certs=None):
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args]
    if cert:
        command += ["-cert", f"{certs}/{cert}.pem", "-key", f"{certs}/{cert}-key.pem", "-CAfile", f"{certs}/ca.pem"]
    return subprocess.run(command, input="", capture_output=True, text=True, timeout=10)


def test_openssl_s_client_sees_h2_only_tls12_and_up_and_a_required_certificate(grpc_upstream, started, certs):
    upstream_port, _ = grpc_upstream
    ferry = start_inbound(started, upstream_port, certs)
    ok = s_client(ferry.port, "-alpn", "h2", cert="client", certs=certs)
    assert "ALPN protocol: h2" in ok.stdout, ok.stdout + ok.stderr
    assert "Verify return code: 0 (ok)" in ok.stdout
    assert re.search(r"New, TLSv1\.[23], Cipher", ok.stdout), ok.stdout
    # No h2 among the client's protocols: the connection is closed, with the reason logged.
    http1 = s_client(ferry.port, "-alpn", "http/1.1", cert="client", certs=certs)
    assert "ALPN protocol: h2" not in http1.stdout
    deadline = time.time() + 5
    while "did not negotiate h2" not in ferry.logs() and time.time() < deadline:
        time.sleep(0.05)
    assert "did not negotiate h2" in ferry.logs()
    old = s_client(ferry.port, "-alpn", "h2", "-tls1_1", cert="client", certs=certs)
    assert "ALPN protocol: h2" not in old.stdout and old.returncode != 0
    # No client certificate on a listener that requires one: the handshake is refused (TLS 1.2,
    # where the server's refusal ends the handshake itself).
    anonymous = s_client(ferry.port, "-alpn", "h2", "-tls1_2")
    assert anonymous.returncode != 0, anonymous.stdout
    assert "alert" in anonymous.stderr and "certificate" in anonymous.stderr, anonymous.stderr
    assert ferry.alive()


def two_hop(started, upstream_port, certs, identities=None, timeout=None):
    """App -> outbound Ferry (plaintext) -> mTLS -> inbound Ferry -> grpcio: (outbound, inbound)."""
    b_port, b_admin = free_port(), free_port()
    inbound = Ferry(config=f"""
admin: {{address: 127.0.0.1:{b_admin}}}
runtime: {{event_loops: 2, drain_timeout: 2s}}
listeners:
  - name: from-mesh
    address: 127.0.0.1:{b_port}
    service: app
    tls: {{certificate: {certs}/node-b.pem, key: {certs}/node-b-key.pem, client_ca: {certs}/ca.pem}}
    authorization: {{allow: ["{TD}/ns/default/sa/node-a"]}}
services:
  app:
    endpoints: ["127.0.0.1:{upstream_port}"]
""", ports={"from-mesh": b_port}, admin_port=b_admin)
    started.append(inbound)
    wanted = identities or [f"{TD}/ns/default/sa/node-b"]
    a_port, a_admin = free_port(), free_port()
    outbound = Ferry(config=f"""
admin: {{address: 127.0.0.1:{a_admin}, metrics: true}}
runtime: {{event_loops: 2, drain_timeout: 2s}}
listeners:
  - {{name: from-app, address: 127.0.0.1:{a_port}, service: node-b}}
services:
  node-b:
    endpoints: ["127.0.0.1:{b_port}"]
    connect_timeout: 1s
    tls:
      ca: {certs}/ca.pem
      certificate: {certs}/node-a.pem
      key: {certs}/node-a-key.pem
      identities: [{", ".join(f'"{i}"' for i in wanted)}]
    {f"timeout: {timeout}" if timeout else ""}
""", ports={"from-app": a_port}, admin_port=a_admin)
    started.append(outbound)
    return outbound, inbound


def test_two_ferrys_carry_a_call_over_mtls_with_the_callers_identity_and_its_deadline(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    outbound, _ = two_hop(started, upstream_port, certs, timeout="1s")
    with grpc.insecure_channel(outbound.target, options=CHANNEL_OPTIONS) as channel:
        for i in range(20):
            assert method(channel, "unary_unary", "Unary")(b"%d" % i, timeout=5) == b"%d" % i
        seen = state.unary_metadata[-1]
        assert seen.get("ferry-client-id") == f"{TD}/ns/default/sa/node-a", seen
        # The outbound Ferry's deadline (its service's 1s timeout, shorter than the caller's)
        # crosses the second hop as grpc-timeout, shortened on the way.
        future = method(channel, "unary_unary", "Sleep").future(b"", timeout=5)
        assert state.sleep_started.wait(5)
        remaining = state.time_remaining[-1]
        assert 0.3 < remaining < 1.0, remaining
        future.cancel()


def test_an_endpoint_with_another_identity_is_a_connection_failure_named_as_such(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    outbound, _ = two_hop(started, upstream_port, certs, identities=[f"{TD}/ns/payments/*"])
    with grpc.insecure_channel(outbound.target, options=CHANNEL_OPTIONS) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            method(channel, "unary_unary", "Unary")(b"x", timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "not one of the service's identities" in failed.value.details(), failed.value.details()
    assert f"{TD}/ns/default/sa/node-b" in failed.value.details()
    assert state.calls == 0


def test_ferry_calls_a_grpcio_server_that_requires_client_certificates(started, certs):
    credentials = grpc.ssl_server_credentials([(read(f"{certs}/server-key.pem"), read(f"{certs}/server.pem"))],
                                              root_certificates=read(f"{certs}/ca.pem"), require_client_auth=True)
    server, upstream_port, state = make_server(0, credentials=credentials)
    try:
        port = free_port()
        ferry = Ferry(config=f"""
runtime: {{event_loops: 1}}
listeners:
  - {{name: app, address: 127.0.0.1:{port}, service: secure}}
services:
  secure:
    endpoints: ["localhost:{upstream_port}"]
    tls: {{ca: {certs}/ca.pem, certificate: {certs}/client.pem, key: {certs}/client-key.pem}}
  without-cert:
    endpoints: ["localhost:{upstream_port}"]
    tls: {{ca: {certs}/ca.pem}}
""", ports={"app": port})
        started.append(ferry)
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            assert method(channel, "unary_unary", "Unary")(b"tls", timeout=5) == b"tls"
        assert state.calls == 1
    finally:
        server.stop(grace=None)


def rotate(certs, into, name):
    """Issues a new certificate for `name` from the same CA and moves it into place atomically."""
    fresh = tempfile.mkdtemp(prefix="ferry-rotate-")
    shutil.copy(f"{certs}/ca.pem", fresh)
    shutil.copy(f"{certs}/ca-key.pem", fresh)
    make_certs(fresh, name)
    for suffix in ("-key.pem", ".pem"):
        shutil.copy(f"{fresh}/{name}{suffix}", f"{into}/{name}{suffix}.new")
    # The key first, then the certificate: for a moment they do not match.
    os.replace(f"{into}/{name}-key.pem.new", f"{into}/{name}-key.pem")
    os.replace(f"{into}/{name}.pem.new", f"{into}/{name}.pem")
    shutil.rmtree(fresh, ignore_errors=True)


def serial_presented(port, certs):
    out = s_client(port, "-alpn", "h2", cert="node-a", certs=certs)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out.stdout, re.S)
    assert pem, out.stdout + out.stderr
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.group(0), capture_output=True, text=True).stdout


def test_certificates_rotate_under_load_without_a_failed_call(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    live = tempfile.mkdtemp(prefix="ferry-live-certs-")
    for f in os.listdir(certs):
        shutil.copy(f"{certs}/{f}", live)
    outbound, inbound = two_hop(started, upstream_port, live)
    failures, done = [], threading.Event()
    calls = [0]

    def load():
        with grpc.insecure_channel(outbound.target, options=CHANNEL_OPTIONS) as channel:
            call = method(channel, "unary_unary", "Unary")
            while not done.is_set():
                try:
                    call(b"r", timeout=5)
                    calls[0] += 1
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        serials = {serial_presented(inbound.port, live)}
        for _ in range(5):
            rotate(live, live, "node-b")
            rotate(live, live, "node-a")
            deadline = time.time() + 10
            while serial_presented(inbound.port, live) in serials and time.time() < deadline:
                time.sleep(0.2)
            serials.add(serial_presented(inbound.port, live))
        # A broken rotation (a key that is not the certificate's) keeps the old material.
        refused = inbound.count_in_logs("certificate rotation failed")
        shutil.copy(f"{live}/client-key.pem", f"{live}/node-b-key.pem")
        deadline = time.time() + 10
        while inbound.count_in_logs("certificate rotation failed") == refused and time.time() < deadline:
            time.sleep(0.1)
        assert inbound.count_in_logs("certificate rotation failed") > refused
        assert "is not the private key of" in inbound.logs()
        assert serial_presented(inbound.port, live) in serials, "a broken rotation replaced the certificate"
        time.sleep(0.5)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert len(serials) == 6, "the inbound Ferry did not present each rotated certificate"
    assert calls[0] > 50
    assert failures == [], failures[:5]
    assert inbound.count_in_logs("certificates reloaded") >= 5


def check(config_text, tmp_path):
    path = tmp_path / "ferry.yaml"
    path.write_text(config_text)
    return subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True)


def test_ferry_check_names_the_file_line_and_reason_of_each_tls_problem(certs, tmp_path):
    result = check(f"""
listeners:
  - name: a
    address: 127.0.0.1:1
    service: s
    tls:
      certificate: {certs}/server.pem
      key: {certs}/client-key.pem
  - name: b
    address: 127.0.0.1:2
    service: s
    tls:
      certificate: {certs}/old.pem
      key: {certs}/old-key.pem
services:
  s:
    endpoints: ["127.0.0.1:3"]
    tls: {{ca: {certs}/missing.pem}}
""", tmp_path)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert re.search(r"ferry\.yaml:7:\d+: listeners\[0\]\.tls\.certificate: .*client-key\.pem is not the private key of .*server\.pem", lines[0]), lines[0]
    assert re.search(r"ferry\.yaml:13:\d+: .*old\.pem expired", lines[1]), lines[1]
    assert re.search(r"ferry\.yaml:18:\d+: services\.s\.tls.*cannot read .*missing\.pem", lines[2]), lines[2]
    ok = check(f"""
listeners:
  - name: a
    address: 127.0.0.1:1
    service: s
    tls: {{certificate: {certs}/server.pem, key: {certs}/server-key.pem, client_ca: {certs}/ca.pem}}
    authorization: {{allow: ["{TD}/ns/shop/*"]}}
services:
  s: {{endpoints: ["127.0.0.1:3"], tls: {{ca: {certs}/ca.pem, identities: ["{TD}/ns/prod/sa/server"]}}}}
""", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "client certificates required" in ok.stdout and f"allow {TD}/ns/shop/*" in ok.stdout
    assert f"identities {TD}/ns/prod/sa/server" in ok.stdout


def test_an_authorization_policy_with_identities_needs_client_certificates(tmp_path):
    result = check("""
listeners:
  - name: plain
    address: 127.0.0.1:1
    service: s
    authorization:
      allow: ["spiffe://ferry.test/ns/a/*"]
services:
  s: {endpoints: ["127.0.0.1:3"]}
""", tmp_path)
    assert result.returncode == 1
    assert re.search(r"ferry\.yaml:7:\d+: listeners\[0\]\.authorization\.allow: no caller of this listener can have an identity", result.stderr), result.stderr


def test_the_certificate_expiry_shows_in_metrics(grpc_upstream, started, certs):
    upstream_port, _ = grpc_upstream
    ferry = start_inbound(started, upstream_port, certs)
    seconds = metric(ferry, "ferry_certificate_expiry_seconds", owner="listener/inbound", file=f"{certs}/server.pem")
    assert 360 * 86400 < seconds <= 366 * 86400, seconds
