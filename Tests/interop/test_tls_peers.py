"""TLS against nghttp2's tools: h2load over TLS through Ferry, nghttpx as a TLS upstream of Ferry
(Ferry verifies it by hostname), and nghttpx as a client-side peer speaking mutual TLS to
Ferry's listener (its backend TLS, with a client certificate), and a HEADERS flood from a
client with a certificate. (test_hostile_downstream runs the other hostile frames over TLS too.)"""
import re
import shutil
import socket
import ssl
import subprocess
import tempfile

import grpc
import pytest

from certs import TRUST_DOMAIN as TD
from certs import make_certs
from conftest import CHANNEL_OPTIONS, Ferry, free_port, method, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("h2load") is None or shutil.which("nghttpx") is None,
                                reason="nghttp2-client / nghttp2-proxy not installed")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="ferry-certs-")
    make_certs(d, "client", "server", "nghttpx")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def started():
    processes = []
    yield processes
    for p in processes:
        if isinstance(p, Ferry):
            alive = p.alive()
            code = p.stop()
            assert alive and code == 0, p.logs()
        else:
            p.terminate()
            p.wait()


def tls_listener(started, upstream_port, certs, client_ca=True):
    port = free_port()
    clients = f", client_ca: {certs}/ca.pem" if client_ca else ""
    ferry = Ferry(config=f"""
runtime: {{event_loops: 2}}
listeners:
  - name: tls
    address: 127.0.0.1:{port}
    service: app
    tls: {{certificate: {certs}/server.pem, key: {certs}/server-key.pem{clients}}}
services:
  app: {{endpoints: ["127.0.0.1:{upstream_port}"]}}
""", ports={"tls": port})
    started.append(ferry)
    return ferry


def test_h2load_over_tls_through_ferry_zero_failures(started, certs, tmp_path):
    docroot = tmp_path / "doc"
    docroot.mkdir()
    (docroot / "echo").write_bytes(b"\x00\x00\x00\x00\x05hello")
    nghttpd_port = free_port()
    nghttpd = subprocess.Popen(["nghttpd", "--no-tls", "-d", str(docroot), "--trailer", "grpc-status: 0", str(nghttpd_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(nghttpd)
    wait_for_port(nghttpd_port)
    ferry = tls_listener(started, nghttpd_port, certs, client_ca=False)
    body = tmp_path / "body"
    body.write_bytes(b"\x00\x00\x00\x00\x05hello")
    out = subprocess.run(["h2load", "-n", "20000", "-c", "10", "-m", "10", "-d", str(body), "-H", "content-type: application/grpc",
                          "-H", "te: trailers", f"https://127.0.0.1:{ferry.port}/echo"], capture_output=True, text=True, timeout=300)
    output = out.stdout + out.stderr
    assert "Application protocol: h2" in output, output
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", output)
    assert m and m.group(4) == "20000" and m.group(5) == "0" and m.group(6) == "0", output


def test_ferry_verifies_nghttpx_as_a_tls_upstream_by_hostname(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    nghttpx_port = free_port()
    nghttpx = subprocess.Popen(["nghttpx", f"--frontend=127.0.0.1,{nghttpx_port}", f"--backend=127.0.0.1,{upstream_port};;proto=h2",
                                f"{certs}/nghttpx-key.pem", f"{certs}/nghttpx.pem", "--no-ocsp", "--workers=1",
                                "--errorlog-file=/dev/null", "--accesslog-file=/dev/null"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(nghttpx)
    wait_for_port(nghttpx_port)
    port, wrong_port = free_port(), free_port()
    ferry = Ferry(config=f"""
runtime: {{event_loops: 1}}
listeners:
  - {{name: app, address: 127.0.0.1:{port}, service: by-name}}
  - {{name: wrong, address: 127.0.0.1:{wrong_port}, service: wrong-name}}
services:
  by-name:
    endpoints: ["localhost:{nghttpx_port}"]
    tls: {{ca: {certs}/ca.pem}}
  wrong-name:
    endpoints: ["localhost:{nghttpx_port}"]
    tls: {{ca: {certs}/ca.pem, server_name: somebody-else}}
""", ports={"app": port, "wrong": wrong_port})
    started.append(ferry)
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        assert method(channel, "unary_unary", "Unary")(b"via nghttpx", timeout=5) == b"via nghttpx"
    with grpc.insecure_channel(f"127.0.0.1:{wrong_port}", options=CHANNEL_OPTIONS) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            method(channel, "unary_unary", "Unary")(b"x", timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "certificate is not valid for somebody-else (its DNS names: nghttpx, localhost)" in failed.value.details(), failed.value.details()
    assert state.calls == 1


def test_nghttpx_speaks_mutual_tls_to_ferry_and_its_identity_reaches_the_upstream(grpc_upstream, started, certs):
    upstream_port, state = grpc_upstream
    ferry = tls_listener(started, upstream_port, certs)
    nghttpx_port = free_port()
    nghttpx = subprocess.Popen(["nghttpx", f"--frontend=127.0.0.1,{nghttpx_port};no-tls",
                                f"--backend=127.0.0.1,{ferry.port};;proto=h2;tls;sni=localhost",
                                f"--cacert={certs}/ca.pem", f"--client-private-key-file={certs}/nghttpx-key.pem",
                                f"--client-cert-file={certs}/nghttpx.pem", "--workers=1",
                                "--errorlog-file=/dev/null", "--accesslog-file=/dev/null"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(nghttpx)
    wait_for_port(nghttpx_port)
    with grpc.insecure_channel(f"127.0.0.1:{nghttpx_port}", options=CHANNEL_OPTIONS) as channel:
        for i in range(5):
            assert method(channel, "unary_unary", "Unary")(b"%d" % i, timeout=5) == b"%d" % i
    assert state.unary_metadata[-1].get("ferry-client-id") == f"{TD}/ns/default/sa/nghttpx"


def tls_socket(port, certs):
    context = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    context.load_cert_chain(f"{certs}/client.pem", f"{certs}/client-key.pem")
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="localhost")


def test_a_headers_flood_over_mutual_tls_ends_only_its_connection(grpc_upstream, started, certs):
    import h2.config
    import h2.connection
    upstream_port, _ = grpc_upstream
    ferry = tls_listener(started, upstream_port, certs)
    # A flood of HEADERS far over the stream limit, then the peer vanishes.
    flood = tls_socket(ferry.port, certs)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for stream_id in range(1, 2001, 2):
        conn.send_headers(stream_id, [(":method", "POST"), (":scheme", "https"), (":path", "/ferry.test.Echo/Sleep"),
                                      (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")])
    try:
        flood.sendall(conn.data_to_send())
    except (ssl.SSLError, ConnectionError):
        pass
    flood.close()
    # Everyone else is still served over TLS.
    credentials = grpc.ssl_channel_credentials(open(f"{certs}/ca.pem", "rb").read(), open(f"{certs}/client-key.pem", "rb").read(),
                                               open(f"{certs}/client.pem", "rb").read())
    with grpc.secure_channel(f"localhost:{ferry.port}", credentials, options=CHANNEL_OPTIONS) as channel:
        assert method(channel, "unary_unary", "Unary")(b"still here", timeout=5) == b"still here"
    assert ferry.alive()
