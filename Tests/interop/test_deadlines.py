"""Deadlines: the earliest of the caller's grpc-timeout, the service's timeout and the listener's
max_deadline, enforced by Ferry itself and propagated upstream as what remains."""
import re
import subprocess
import threading
import time

import grpc
import hpack
import pytest
from hyperframe.frame import DataFrame, HeadersFrame

from conftest import CHANNEL_OPTIONS, free_port, method
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


def plain_get(port, path, headers=()):
    """A plain HTTP/2 request with nghttp (nghttp2's client); returns (status, output, seconds
    from sending the request's HEADERS to receiving the response's, by nghttp's own clock, so a
    slow start of the nghttp process is not counted)."""
    args = ["nghttp", "-v", "-t", "10"] + [a for h in headers for a in ("-H", h)] + [f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20).stdout
    status = re.search(r":status: (\d+)", out)
    sent = re.search(r"\[\s*([\d.]+)\] send HEADERS frame", out)
    answered = re.search(r"\[\s*([\d.]+)\] recv HEADERS frame", out)
    elapsed = float(answered.group(1)) - float(sent.group(1)) if sent and answered else None
    return (status.group(1) if status else None), out, elapsed


def test_plain_http_deadline_crosses_ferry_hops_in_the_deadline_header(ferry_factory):
    upstream = H2Upstream()   # never answers /hang
    try:
        inner_port, outer_port = free_port(), free_port()
        # The inner Ferry trusts its callers' ferry-deadline; the outer one sends it, keeping 50 ms back.
        ferry_factory(config=f"""
listeners:
  - {{name: inner, address: "127.0.0.1:{inner_port}", service: hang, deadline_header: true}}
services:
  hang: {{endpoints: ["127.0.0.1:{upstream.port}"]}}
""", ports={"inner": inner_port})
        ferry_factory(config=f"""
listeners:
  - {{name: outer, address: "127.0.0.1:{outer_port}", service: next}}
services:
  next: {{endpoints: ["127.0.0.1:{inner_port}"], timeout: 300ms, deadline_offset: 50ms, deadline_header: true}}
""", ports={"outer": outer_port})
        status, out, elapsed = plain_get(outer_port, "/hang")
        # The inner hop ends the call at the absolute time it was given (300 ms - 50 ms), and names it.
        assert status == "504", out
        assert "set by the caller's ferry-deadline" in out, out
        assert 0.24 <= elapsed < 0.3, elapsed
        sent = [h for h in upstream.requests if h.get(":path") == "/hang"][-1]
        assert "ferry-deadline" not in sent, "the inner hop passed the deadline on, but sends none by default"
    finally:
        upstream.stop()


def test_a_malformed_deadline_header_is_refused_where_it_is_trusted(ferry_factory):
    upstream = H2Upstream()
    try:
        port = free_port()
        ferry_factory(config=f"""
listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: s, deadline_header: true}}
services:
  s: {{endpoints: ["127.0.0.1:{upstream.port}"]}}
""", ports={"in": port})
        status, out, _ = plain_get(port, "/ok/echo", ["ferry-deadline: soon"])
        assert status == "400" and "malformed ferry-deadline" in out, out
        assert not upstream.requests
    finally:
        upstream.stop()


def test_the_deadline_header_is_ignored_unless_the_listener_trusts_it(ferry_factory):
    upstream = H2Upstream()
    try:
        port = free_port()
        ferry_factory(config=f"""
listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: s}}
services:
  s: {{endpoints: ["127.0.0.1:{upstream.port}"], timeout: 200ms}}
""", ports={"in": port})
        status, out, elapsed = plain_get(port, "/hang", ["ferry-deadline: 1"])   # long past, if it were trusted
        assert status == "504" and "the timeout configured at services.s" in out, out
        assert elapsed >= 0.19
    finally:
        upstream.stop()


def test_a_stream_idle_timeout_ends_a_quiet_stream_but_not_a_busy_one(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port], service_options="    methods: [{match: ferry.test.Echo/Bidi, stream_idle_timeout: 300ms}]")
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        quiet = threading.Event()

        def requests():
            for i in range(8):                 # a message every 100 ms: never idle for 300 ms
                yield b"m%d" % i
                time.sleep(0.1)
            quiet.set()
            time.sleep(5)                      # then silence, the stream still open

        t0 = time.monotonic()
        call = channel.stream_stream("/ferry.test.Echo/Bidi")(requests(), timeout=10)
        received = []
        with pytest.raises(grpc.RpcError) as err:
            for message in call:
                received.append(message)
        elapsed = time.monotonic() - t0
    assert received == [b"m%d" % i for i in range(8)], received
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.value.details() == "ferry: no message either way for 300ms (stream_idle_timeout at services.upstream.methods[0])"
    # About 0.8 s of traffic, then 300 ms of silence.
    assert 1.0 <= elapsed < 1.6, elapsed
