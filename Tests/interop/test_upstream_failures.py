"""Upstream resets and deaths become valid gRPC errors for the caller, and Ferry keeps serving."""
import os
import signal
import struct
import subprocess
import sys
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, HERE, free_port, method, wait_for_port
from h2_upstream import H2Upstream


@pytest.fixture
def h2_upstream():
    upstream = H2Upstream()
    yield upstream
    upstream.stop()


# (path, HTTP/2 code, status the gRPC caller must see)
RESET_CASES = [
    ("immediately", 7, grpc.StatusCode.UNAVAILABLE),        # REFUSED_STREAM
    ("immediately", 8, grpc.StatusCode.CANCELLED),          # CANCEL
    ("immediately", 2, grpc.StatusCode.INTERNAL),           # INTERNAL_ERROR
    ("after-headers", 11, grpc.StatusCode.RESOURCE_EXHAUSTED),  # ENHANCE_YOUR_CALM
    ("after-headers", 2, grpc.StatusCode.INTERNAL),
    ("during-data", 8, grpc.StatusCode.CANCELLED),
    ("during-data", 1, grpc.StatusCode.INTERNAL),           # PROTOCOL_ERROR
    ("after-data", 2, grpc.StatusCode.INTERNAL),            # the whole body, then a reset instead of trailers
]


@pytest.mark.parametrize("when,code,expected", RESET_CASES)
def test_upstream_reset_reaches_the_client_as_grpc_status(h2_upstream, ferry_factory, when, code, expected):
    ferry = ferry_factory([h2_upstream.port])
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(f"/reset/{when}/{code}")
        with pytest.raises(grpc.RpcError) as err:
            call(b"hello", timeout=5)
        assert err.value.code() == expected, err.value.details()
        if when == "immediately":
            # Nothing was sent to the caller yet: Ferry answers with its own message.
            assert "reset the stream" in err.value.details() or "refused" in err.value.details()
        # The connection and the proxy keep serving the next call.
        assert channel.unary_unary("/ok/echo")(b"still here", timeout=5) == b"still here"
    assert h2_upstream.resets_sent >= 1


def start_echo_process(port):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "peers", "echo_server.py"), "--port", str(port),
                             "--name", "proc"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_port(port)
    return proc


def test_upstream_killed_mid_stream_gives_unavailable_then_recovers(ferry_factory):
    port = free_port()
    proc = start_echo_process(port)
    try:
        ferry = ferry_factory([port])
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            unary = method(channel, "unary_unary", "Unary")
            assert unary(b"before", timeout=5) == b"before"
            stream = method(channel, "unary_stream", "ServerStream")(struct.pack(">III", 1000, 100, 20), timeout=30)
            first = next(stream)
            assert len(first) == 100
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                for _ in stream:
                    pass
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert time.monotonic() - t0 < 2.0, "the caller learned of the dead upstream too late"

            # While it is down: calls fail fast with UNAVAILABLE naming the endpoint.
            with pytest.raises(grpc.RpcError) as err:
                unary(b"during", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert f"127.0.0.1:{port}" in err.value.details()

            proc = start_echo_process(port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert unary(b"after", timeout=5) == b"after"
                    break
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE
                    assert time.monotonic() < deadline, "calls did not recover after the upstream came back"
                    time.sleep(0.1)
            for i in range(20):
                assert unary(struct.pack(">I", i), timeout=5) == struct.pack(">I", i)
    finally:
        proc.kill()
        proc.wait()


def test_no_upstream_listening_gives_unavailable(ferry_factory):
    dead = free_port()
    ferry = ferry_factory([dead])
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        with pytest.raises(grpc.RpcError) as err:
            method(channel, "unary_unary", "Unary")(b"x", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # The system's words for it, not NIO's debug text of its error types.
        assert err.value.details().startswith(f"ferry: cannot connect to 127.0.0.1:{dead}: Connection refused"), err.value.details()
        assert "errno" not in err.value.details() and "NIOConnectionError" not in err.value.details(), err.value.details()


def test_messages_over_the_size_limit_fail_only_their_call(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    ferry = ferry_factory([port], service_options="    max_message_size: 2KiB")
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        unary = method(channel, "unary_unary", "Unary")
        assert unary(b"a" * 2048, timeout=5) == b"a" * 2048          # exactly the limit passes
        with pytest.raises(grpc.RpcError) as err:
            unary(b"b" * 2049, timeout=5)                           # one byte over, request side
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.details() == "ferry: request message of 2049 bytes is larger than the limit of 2048 bytes"
        with pytest.raises(grpc.RpcError) as err:
            # Response side: the upstream streams 3000-byte messages.
            list(method(channel, "unary_stream", "ServerStream")(struct.pack(">III", 3, 3000, 0), timeout=5))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "response message of 3000 bytes" in err.value.details()
        # The same connection goes on serving.
        assert unary(b"ok", timeout=5) == b"ok"


def test_grpc_status_details_bin_passes_through(h2_upstream, ferry_factory):
    ferry = ferry_factory([h2_upstream.port])
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/details")(b"x", timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "bad field"
        trailing = dict(err.value.trailing_metadata())
        assert trailing["grpc-status-details-bin"] == b"\x08\x03\x12\x09bad field"


@pytest.mark.parametrize("value", ["1.5S", "100", "123456789m", "10s", "-1S", ""])
def test_malformed_grpc_timeout_fails_the_call_with_internal(grpc_upstream, ferry_factory, value):
    from test_hostile_downstream import RawClient
    import hpack as hpacklib
    port, state = grpc_upstream
    ferry = ferry_factory([port])
    client = RawClient(ferry.port)
    client.handshake()
    client.send(client.request_headers(1, extra=[("grpc-timeout", value)]))
    decoder = hpacklib.Decoder()
    headers = {}
    for frame in client.frames(timeout=2):
        if frame.__class__.__name__ == "HeadersFrame" and frame.stream_id == 1:
            headers = dict(decoder.decode(frame.data))
            break
    client.close()
    assert headers.get("grpc-status") == "13", headers
    assert headers.get("grpc-message", "").startswith("ferry: malformed grpc-timeout")
    assert state.calls == 0, "a call with a malformed grpc-timeout reached the upstream"


def test_a_response_cut_short_after_a_declared_content_length_is_reset_not_given_trailers(ferry_factory, tmp_path):
    """nghttpd serves a file whose bytes are not gRPC messages, with content-length: Ferry fails
    the call mid-response, and must reset the stream rather than send trailers after fewer bytes
    than declared (nghttp would reject that as a messaging violation)."""
    import shutil
    import subprocess
    from conftest import free_port, wait_for_port
    if shutil.which("nghttpd") is None:
        pytest.skip("nghttpd not installed")
    (tmp_path / "bad").write_bytes(b"\x80" + b"z" * 99)       # compressed flag 0x80: not gRPC
    port = free_port()
    server = subprocess.Popen(["nghttpd", "--no-tls", "-d", str(tmp_path), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        ferry = ferry_factory([port])
        out = subprocess.run(["nghttp", "-v", "-H", "content-type: application/grpc", f"http://127.0.0.1:{ferry.port}/bad"],
                             capture_output=True, text=True, timeout=30).stdout
        # The headers and the reset leave in the same tick; nghttp2 drops a reset stream's pending
        # HEADERS, so the client sees the reset alone (a gRPC client reports INTERNAL).
        assert "recv RST_STREAM frame" in out and "INTERNAL_ERROR" in out, out
        assert "Violation in HTTP messaging rule" not in out, out
    finally:
        server.terminate()
        server.wait()
