"""End to end through Ferry with gRPC C-core (grpcio) on both sides: every byte of every call intact."""
import os
import struct
import threading
import time

import grpc
import pytest

from conftest import method


def test_unary_roundtrip(proxied):
    channel, state, _ = proxied
    call = method(channel, "unary_unary", "Unary")
    for size in (0, 1, 100, 16 * 1024, 70_000):
        payload = os.urandom(size)
        assert call(payload, timeout=10) == payload


def test_client_streaming(proxied):
    channel, _, _ = proxied
    call = method(channel, "stream_unary", "ClientStream")
    chunks = [os.urandom(n) for n in (1, 1000, 50_000, 0, 300_000)]
    reply = call(iter(chunks), timeout=10)
    assert struct.unpack(">Q", reply)[0] == sum(len(c) for c in chunks)


def test_server_streaming(proxied):
    channel, _, _ = proxied
    call = method(channel, "unary_stream", "ServerStream")
    replies = list(call(struct.pack(">III", 200, 3000, 0), timeout=10))
    assert len(replies) == 200
    assert all(r == bytes([i % 251]) * 3000 for i, r in enumerate(replies))


def test_bidi_streaming_ping_pong(proxied):
    channel, _, _ = proxied
    call = method(channel, "stream_stream", "Bidi")
    outgoing = []
    cond = threading.Condition()

    def requests():
        for i in range(50):
            msg = struct.pack(">I", i) + os.urandom(i * 37)
            with cond:
                outgoing.append(msg)
            yield msg

    received = list(call(requests(), timeout=10))
    assert received == outgoing


def test_8_mib_each_way(proxied):
    channel, _, _ = proxied
    payload = os.urandom(8 * 1024 * 1024)
    assert method(channel, "unary_unary", "Unary")(payload, timeout=30) == payload


def test_1000_concurrent_rpcs_on_one_connection(proxied):
    channel, state, _ = proxied
    call = method(channel, "unary_unary", "Unary")
    payloads = [struct.pack(">I", i) * 8 for i in range(1000)]
    futures = [call.future(p, timeout=30) for p in payloads]
    results = [f.result() for f in futures]
    assert results == payloads
    assert state.calls >= 1000


def test_ascii_and_binary_metadata_both_ways(proxied):
    channel, _, _ = proxied
    call = method(channel, "unary_unary", "Unary")
    binary = bytes(range(256))
    md = [("x-ascii", "hello world"), ("x-data-bin", binary), ("x-empty", "")]
    reply, outcome = call.with_call(b"m", metadata=md, timeout=10)
    assert reply == b"m"
    initial = dict(outcome.initial_metadata())
    trailing = dict(outcome.trailing_metadata())
    assert initial["x-ascii"] == "hello world"
    assert initial["x-data-bin"] == binary
    assert initial["x-empty"] == ""
    assert initial["x-upstream"] == "grpcio"
    assert trailing["x-ascii-t"] == "hello world"
    assert trailing["x-data-t-bin"] == binary


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
                                  grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
def test_non_ok_status_with_unicode_message(proxied, code):
    channel, _, _ = proxied
    message = "失败 — tab\there, newline\nthere, 🚢 ferry %41"
    call = method(channel, "unary_unary", "Unary")
    with pytest.raises(grpc.RpcError) as err:
        call(message.encode(), metadata=[("x-status", str(code.value[0]))], timeout=10)
    assert err.value.code() == code
    assert err.value.details() == message


def test_client_cancellation_reaches_server(proxied):
    channel, state, _ = proxied
    future = method(channel, "unary_unary", "Sleep").future(b"zz", timeout=20)
    assert state.sleep_started.wait(5), "the upstream never saw the call"
    t0 = time.monotonic()
    future.cancel()
    assert state.cancelled.wait(5), "the upstream never observed the cancellation"
    assert time.monotonic() - t0 < 2
    with pytest.raises(grpc.FutureCancelledError):
        future.result()


def test_caller_deadline_reaches_the_upstream(proxied):
    channel, state, _ = proxied
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        method(channel, "unary_unary", "Sleep")(b"", timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The upstream's own C-core enforces the forwarded grpc-timeout and cancels the handler.
    assert state.cancelled.wait(5), "the upstream never learned of the deadline"
    assert time.monotonic() - t0 < 5


def test_many_sequential_calls_reuse_the_upstream_connection(proxied):
    channel, state, ferry = proxied
    call = method(channel, "unary_unary", "Unary")
    for i in range(300):
        assert call(struct.pack(">I", i), timeout=10) == struct.pack(">I", i)
    assert ferry.alive()
