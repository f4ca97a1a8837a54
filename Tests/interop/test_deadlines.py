"""Deadlines: the earliest of the caller's grpc-timeout, the service's timeout and the listener's
max_deadline, enforced by Ferry itself and propagated upstream as what remains."""
import time

import grpc
import hpack
import pytest
from hyperframe.frame import DataFrame, HeadersFrame

from conftest import CHANNEL_OPTIONS, method
from h2_upstream import H2Upstream
from test_hostile_downstream import RawClient


def raw_call(ferry_port, path, timeout_header, wait=3.0):
    """A client that sends grpc-timeout but never enforces it: whatever ends the call is Ferry."""
    client = RawClient(ferry_port)
    client.handshake()
    extra = [("grpc-timeout", timeout_header)] if timeout_header else []
    empty_message = DataFrame(1, b"\x00\x00\x00\x00\x00")
    empty_message.flags.add("END_STREAM")
    client.send(client.request_headers(1, path=path, end_stream=False, extra=extra), empty_message)
    decoder = hpack.Decoder()
    t0 = time.monotonic()
    found = {}

    def status_arrived(frame):
        # Decode every header block in order (HPACK state), stop at the one with grpc-status.
        if isinstance(frame, HeadersFrame) and frame.stream_id == 1:
            headers = dict(decoder.decode(frame.data))
            if "grpc-status" in headers:
                found.update(headers)
                return True
        return False

    client.frames(timeout=wait, until=status_arrived)
    elapsed = time.monotonic() - t0
    client.close()
    return found, elapsed


def test_caller_deadline_is_enforced_by_ferry(ferry_factory):
    upstream = H2Upstream()   # never answers /hang and ignores grpc-timeout: only Ferry can end it
    try:
        ferry = ferry_factory([upstream.port])
        headers, elapsed = raw_call(ferry.port, "/hang", "100m")
        assert headers.get("grpc-status") == "4", headers                  # DEADLINE_EXCEEDED
        assert headers.get("grpc-message") == "ferry: deadline exceeded (100ms, set by the caller's grpc-timeout)"
        assert 0.095 <= elapsed < 0.5, f"answered after {elapsed:.3f}s"
    finally:
        upstream.stop()


def test_caller_deadline_is_propagated_and_the_upstream_cancels(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    ferry = ferry_factory([port])
    headers, elapsed = raw_call(ferry.port, "/ferry.test.Echo/Sleep", "100m")
    # The upstream's C-core holds a slightly smaller timeout, so it usually answers first.
    assert headers.get("grpc-status") == "4", headers
    assert elapsed < 0.5, f"answered after {elapsed:.3f}s"
    assert state.cancelled.wait(5), "the upstream never saw the call end"
    # What the upstream was given is what remained when the attempt started: below 100 ms.
    assert 0 < state.time_remaining[-1] < 0.1, state.time_remaining


def test_service_timeout_applies_when_the_caller_sets_none(ferry_factory):
    # An upstream that ignores deadlines and never answers: only Ferry can end the call.
    upstream = H2Upstream()
    try:
        ferry = ferry_factory([upstream.port], service_options="    timeout: 50ms")
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary("/hang")(b"", timeout=10)
            elapsed = time.monotonic() - t0
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert err.value.details() == 'ferry: deadline exceeded (50ms, set by the timeout configured at services.upstream)'
        assert 0.045 <= elapsed < 1.0
    finally:
        upstream.stop()


def test_propagated_deadline_is_enforced_by_a_grpc_upstream_too(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    ferry = ferry_factory([port], service_options="    timeout: 50ms")
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        with pytest.raises(grpc.RpcError) as err:
            method(channel, "unary_unary", "Sleep")(b"", timeout=10)
    # Whichever ends it first, Ferry or the upstream's C-core holding the propagated timeout.
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert state.cancelled.wait(5)
    assert 0 < state.time_remaining[-1] <= 0.05, state.time_remaining


def test_the_shorter_of_caller_and_service_wins(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    ferry = ferry_factory([port], service_options="    timeout: 2s")
    headers, elapsed = raw_call(ferry.port, "/ferry.test.Echo/Sleep", "150m")
    assert headers.get("grpc-status") == "4"
    assert "set by the caller's grpc-timeout" in headers.get("grpc-message", "")
    assert elapsed < 1.0


def test_an_expired_deadline_fails_fast_without_contacting_the_upstream(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    ferry = ferry_factory([port], service_options="    deadline_offset: 20ms")
    for value in ("0n", "10m"):        # nothing left, or less than the offset
        headers, elapsed = raw_call(ferry.port, "/ferry.test.Echo/Unary", value)
        assert headers.get("grpc-status") == "4", (value, headers)
        assert elapsed < 0.2
    assert state.calls == 0, "an attempt that could not finish was sent upstream"


def test_a_call_queued_behind_a_saturated_pool_times_out_on_time(ferry_factory):
    upstream = H2Upstream(max_concurrent_streams=1)
    try:
        # One event loop: both client connections share the loop's single upstream connection.
        ferry = ferry_factory([upstream.port], event_loops=1, service_options="    max_connections_per_endpoint: 1")
        blocker = RawClient(ferry.port)
        blocker.handshake()
        blocker.send(blocker.request_headers(1, path="/hang"))       # takes the only upstream stream
        time.sleep(0.2)
        headers, elapsed = raw_call(ferry.port, "/ok/echo", "200m")
        blocker.close()
        assert headers.get("grpc-status") == "4", headers
        assert 0.19 <= elapsed < 0.6, f"queued call ended after {elapsed:.3f}s"
        assert upstream.peak_streams == 1
    finally:
        upstream.stop()
