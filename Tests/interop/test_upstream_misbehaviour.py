"""Upstreams that misbehave (python-h2 playing the upstream): each case asserts exactly what the
gRPC client (grpcio) sees, and that Ferry keeps serving."""
import os
import struct
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, method
from h2_upstream import H2Upstream
from raw_h2 import RawClient


def echo_calls(target, count, size=1000):
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary("/ok/echo")
        payloads = [struct.pack(">I", i) + os.urandom(size) for i in range(count)]
        futures = [call.future(p, timeout=10) for p in payloads]
        return [(f.result(), p) for f, p in zip(futures, payloads)]


def test_goaway_with_streams_in_flight_is_invisible_to_the_client(ferry_factory):
    upstream = H2Upstream(goaway_after=4)
    try:
        ferry = ferry_factory([upstream.port])
        results = echo_calls(ferry.target, 30)
        assert all(got == sent for got, sent in results)
        # The scenario really happened: streams were refused by GOAWAY and sent again elsewhere.
        assert upstream.goaways_sent == 1
        assert upstream.refused_by_goaway >= 1
        assert upstream.connections >= 2
        assert upstream.completed == 30
    finally:
        upstream.stop()


def test_upstream_allowing_one_stream_at_a_time_serves_every_call(ferry_factory):
    upstream = H2Upstream(max_concurrent_streams=1)
    try:
        ferry = ferry_factory([upstream.port])
        results = echo_calls(ferry.target, 40)
        assert all(got == sent for got, sent in results)
        assert upstream.peak_streams == 1
        assert upstream.completed == 40
    finally:
        upstream.stop()


def test_ping_storm_below_the_ack_limit_is_answered(ferry_factory):
    upstream = H2Upstream(ping_storm=300)
    try:
        ferry = ferry_factory([upstream.port])
        results = echo_calls(ferry.target, 20)
        assert all(got == sent for got, sent in results)
    finally:
        upstream.stop()


def test_ping_flood_cuts_the_upstream_connection_and_the_client_gets_unavailable(grpc_upstream, ferry_factory):
    flood = H2Upstream(ping_storm=5000)
    good_port, _ = grpc_upstream
    try:
        ferry = ferry_factory({"flood": [flood.port], "good": [good_port]})
        with grpc.insecure_channel(ferry.targets["flood"], options=CHANNEL_OPTIONS) as channel:
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary("/ok/echo")(b"x", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(ferry.targets["good"], options=CHANNEL_OPTIONS) as channel:
            assert method(channel, "unary_unary", "Unary")(b"fine", timeout=5) == b"fine"
    finally:
        flood.stop()


def test_malformed_frame_from_upstream_fails_its_calls_only(grpc_upstream, ferry_factory):
    bad = H2Upstream()
    good_port, state = grpc_upstream
    try:
        ferry = ferry_factory({"bad": [bad.port], "good": [good_port]})
        good_channel = grpc.insecure_channel(ferry.targets["good"], options=CHANNEL_OPTIONS)
        # A call in flight on another upstream connection while the bad upstream breaks its own.
        streaming = method(good_channel, "unary_stream", "ServerStream")(struct.pack(">III", 20, 100, 20), timeout=10)
        first = next(streaming)
        with grpc.insecure_channel(ferry.targets["bad"], options=CHANNEL_OPTIONS) as channel:
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary("/malformed")(b"x", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "lost" in err.value.details()
        # The default retry policy makes 3 attempts; each loses its connection the same way.
        assert bad.malformed_sent == 3
        rest = list(streaming)
        assert len(rest) == 19 and first == bytes([0]) * 100
        good_channel.close()
    finally:
        bad.stop()


def test_upstream_that_stops_reading_pushes_back_on_the_client(grpc_upstream, ferry_factory):
    stuck = H2Upstream(stop_reading=True)
    good_port, _ = grpc_upstream
    try:
        ferry = ferry_factory({"stuck": [stuck.port], "good": [good_port]})
        rss_before = ferry.rss_kib()
        sent = [0]
        chunk = os.urandom(1024 * 1024)

        def requests():
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                sent[0] += len(chunk)
                yield chunk

        with grpc.insecure_channel(ferry.targets["stuck"], options=CHANNEL_OPTIONS) as channel:
            future = channel.stream_unary("/ok/echo").future(requests(), timeout=4)
            with pytest.raises(grpc.RpcError) as err:
                future.result()
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        growth_mib = (ferry.rss_kib() - rss_before) / 1024
        # Flow control held the client back: only windows and socket buffers' worth was accepted.
        assert sent[0] < 48 * 1024 * 1024, f"client pushed {sent[0] >> 20} MiB into a stuck upstream"
        assert growth_mib < 16, f"Ferry grew {growth_mib:.1f} MiB"
        with grpc.insecure_channel(ferry.targets["good"], options=CHANNEL_OPTIONS) as channel:
            assert method(channel, "unary_unary", "Unary")(b"fine", timeout=5) == b"fine"
    finally:
        stuck.stop()


def test_streams_refused_by_goaway_go_on_to_policy_retries_after_the_transparent_ones(ferry_factory):
    """Issue 17: a stream refused by GOAWAY was failed after 3 transparent retries with attempts
    and budget left. Never processed, it is as safe to retry as a REFUSED_STREAM: the retry
    policy (3 attempts by default) takes over."""
    upstream = H2Upstream()
    try:
        ferry = ferry_factory([upstream.port])
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            # The first 12 requests are refused by GOAWAY: 1 + 10 transparent retries (a GOAWAY
            # refusal gets more of those than a REFUSED_STREAM), then a policy retry is refused
            # too, and the next one (the policy's third attempt) is served.
            got = channel.unary_unary("/goaway-first/12/a")(b"hi", timeout=10)
        assert got == b"hi"
        assert upstream.refused_by_goaway == 12
        assert upstream.completed == 1
        _, text = ferry.admin("/metrics")
        retries = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("ferry_retries_total{"))
        assert retries == 2, text
        # A call whose refusals outlast the policy's attempts still gets a clean UNAVAILABLE.
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            with pytest.raises(grpc.RpcError) as failed:
                channel.unary_unary("/goaway-first/100/b")(b"hi", timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "refused" in failed.value.details()
    finally:
        upstream.stop()


def test_an_upstream_refusing_every_stream_is_ejected(ferry_factory):
    """Issue 17: REFUSED_STREAM on every call left the endpoint active, taking about half the
    first attempts (each an extra hop). Refusals now count in failure accrual."""
    refuser = H2Upstream(refuse_all=True)
    good = H2Upstream()
    try:
        # Round-robin: PeakEWMA alone would already avoid an endpoint that never answers; the
        # point is that failure accrual sees refusals, whatever the balancer.
        ferry = ferry_factory([refuser.port, good.port], event_loops=1, service_options="    balancer: round-robin")
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            call = channel.unary_unary("/ok/echo")
            for i in range(300):
                call(struct.pack(">I", i), timeout=5)
        refused = len(refuser.requests)
        # 7 consecutive failures eject it for 1 s (doubling); a probe per backoff after that.
        # Without accrual round-robin gave it half of the 300 first attempts.
        assert refused <= 30, f"the refusing upstream got {refused} of 300 calls"
        assert good.completed == 300
        assert ferry.count_in_logs("endpoint ejected after consecutive failures") >= 1, ferry.logs()
    finally:
        refuser.stop()
        good.stop()


def test_callers_that_vanish_while_their_upstream_is_silent_leave_ferry_serving(ferry_factory):
    """Each caller's connection goes away (TCP RST) while its call waits on an upstream that has
    not answered: Ferry cancels every upstream stream (the upstream counts the RST_STREAMs), and
    when those streams close, the calls must not reach into their callers' connections, which
    may be gone (H2ConnectionLifetimeTests holds a stream past its connection: that trapped)."""
    upstream = H2Upstream()
    try:
        ferry = ferry_factory([upstream.port])
        callers = 20
        for i in range(callers):
            client = RawClient(ferry.port)
            client.handshake()
            client.send(client.request_headers(1, path="/hang"))
            deadline = time.monotonic() + 10
            while len(upstream.requests) <= i and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(upstream.requests) == i + 1, "the call reached the upstream"
            client.close(abrupt=True)
        deadline = time.monotonic() + 10
        while upstream.resets_received < callers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert upstream.resets_received == callers, "every vanished caller's upstream stream was cancelled"
        assert ferry.alive(), ferry.logs()
        results = echo_calls(ferry.target, 5)
        assert all(got == sent for got, sent in results)
    finally:
        upstream.stop()
