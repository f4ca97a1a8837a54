"""Hostile and malformed input from a client: the right HTTP/2 error, and everyone else keeps
being served. Each test runs on a plaintext listener and on a TLS one (the frames inside TLS)."""
import shutil
import socket
import ssl
import tempfile

import grpc
import hpack
import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame

from certs import make_certs
from conftest import CHANNEL_OPTIONS, assert_still_serving, free_port, method
from raw_h2 import RawClient

PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
ENHANCE_YOUR_CALM = 0xB


@pytest.fixture(scope="module")
def tls_files():
    d = tempfile.mkdtemp(prefix="ferry-certs-")
    make_certs(d, "server")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Target:
    """A Ferry in front of the grpcio upstream, reached in plaintext or over TLS."""

    def __init__(self, ferry, ca=None):
        self.ferry, self.ca = ferry, ca
        self.port = ferry.port

    def client(self):
        if self.ca is None:
            return RawClient(self.port)
        context = ssl.create_default_context(cafile=self.ca)
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=5), server_hostname="localhost")
        return RawClient(self.port, sock=sock)

    def assert_still_serving(self):
        if self.ca is None:
            return assert_still_serving(self.ferry)
        credentials = grpc.ssl_channel_credentials(open(self.ca, "rb").read())
        with grpc.secure_channel(f"localhost:{self.port}", credentials, options=CHANNEL_OPTIONS) as channel:
            assert method(channel, "unary_unary", "Unary")(b"fine", timeout=5) == b"fine"


@pytest.fixture(params=["plaintext", "tls"])
def target(request, grpc_upstream, ferry_factory, tls_files):
    port, _ = grpc_upstream
    if request.param == "plaintext":
        return Target(ferry_factory([port]))
    listen = free_port()
    ferry = ferry_factory(config=f"""
runtime: {{event_loops: 2, drain_timeout: 5s}}
listeners:
  - name: tls
    address: 127.0.0.1:{listen}
    service: upstream
    tls: {{certificate: {tls_files}/server.pem, key: {tls_files}/server-key.pem}}
services:
  upstream: {{endpoints: ["127.0.0.1:{port}"]}}
""", ports={"tls": listen})
    return Target(ferry, ca=f"{tls_files}/ca.pem")


def test_headers_on_a_lower_stream_id_is_a_connection_error(target):
    client = target.client()
    client.handshake()
    client.send(client.request_headers(5))   # opens 5: ids 1 and 3 are now implicitly closed
    client.send(client.request_headers(3))   # RFC 9113 5.1.1: PROTOCOL_ERROR
    goaway = client.goaway()
    client.close()
    assert goaway is not None, "no GOAWAY for a HEADERS frame on a lower stream id"
    assert goaway.error_code == PROTOCOL_ERROR
    target.assert_still_serving()


def test_trailers_on_an_open_lower_stream_are_fine(target):
    client = target.client()
    client.handshake()
    client.send(client.request_headers(1, end_stream=False))
    client.send(client.request_headers(3, end_stream=False))
    # Stream 1 is lower than 3 but open: its request message and trailers are legal.
    data = DataFrame(1, b"\x00\x00\x00\x00\x02hi")
    trailers = HeadersFrame(1, client.encoder.encode([("x-trailer", "1")]))
    trailers.flags.add("END_HEADERS")
    trailers.flags.add("END_STREAM")
    client.send(data, trailers)
    frames = client.frames(timeout=2)
    client.close()
    assert not any(isinstance(f, GoAwayFrame) and f.error_code != 0 for f in frames)
    assert any(isinstance(f, DataFrame) and f.stream_id == 1 and f.data.endswith(b"hi") for f in frames)


def test_invalid_preface_gets_goaway_and_close(target):
    client = target.client()
    client.sock.sendall(b"\x00\x01garbage that is no preface\r\n\r\n")
    goaway = client.goaway()
    client.close()
    assert goaway is not None and goaway.error_code == PROTOCOL_ERROR
    target.assert_still_serving()


def test_an_http1_request_inside_tls_with_h2_negotiated_gets_goaway(target):
    if target.ca is None:
        pytest.skip("plaintext HTTP/1 clients get a 505 (test_http1_clients)")
    client = target.client()
    client.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    goaway = client.goaway()
    client.close()
    assert goaway is not None and goaway.error_code == PROTOCOL_ERROR


def test_empty_data_frame_flood_is_cut_off(target):
    client = target.client()
    client.handshake()
    client.send(client.request_headers(1, end_stream=False))
    try:
        for _ in range(20):
            client.send(*[DataFrame(1, b"") for _ in range(100)])
    except OSError:
        pass
    goaway = client.goaway()
    client.close()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    target.assert_still_serving()


def test_rapid_reset_flood_is_cut_off(target):
    client = target.client()
    client.handshake()
    try:
        for i in range(1, 2 * 3000, 2):
            client.send(client.request_headers(i, end_stream=False), RstStreamFrame(i, error_code=0x8))
    except OSError:
        pass
    goaway = client.goaway()
    client.close()
    # libnghttp2's reset-rate limit (burst 1000, then 33/s) answers with INTERNAL_ERROR.
    assert goaway is not None and goaway.error_code == INTERNAL_ERROR
    assert goaway.last_stream_id < 2 * 1100, "the flood was not stopped near the burst limit"
    target.assert_still_serving()


def test_oversized_header_list_gets_431_and_the_connection_lives(target):
    client = target.client()
    client.handshake()
    big = [(f"x-big-{i}", "v" * 4000) for i in range(20)]   # about 80 KB > the 64 KiB limit
    headers = client.request_headers(1, path="/plain", extra=big)
    # Split the block over CONTINUATION frames the way a real client must.
    block = headers.data
    first = HeadersFrame(1, block[:16000])
    first.flags.add("END_STREAM")
    rest = [block[i:i + 16000] for i in range(16000, len(block), 16000)]
    frames = [first] + [ContinuationFrame(1, chunk) for chunk in rest]
    frames[-1].flags.add("END_HEADERS")
    client.send(*frames)
    client.send(client.request_headers(3))
    got = client.frames(timeout=2)
    client.close()
    decoder = hpack.Decoder()
    statuses = {}
    for f in got:
        if isinstance(f, HeadersFrame):
            statuses.setdefault(f.stream_id, dict(decoder.decode(f.data)))
    assert statuses.get(1, {}).get(":status") == "431"
    assert not any(isinstance(f, GoAwayFrame) and f.error_code != 0 for f in got)
    assert 3 in statuses, "the next stream on the same connection was not served"
