"""Per-call balancing, failure accrual, keepalive and load shedding, against grpcio upstreams."""
import threading
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server
from h2_upstream import H2Upstream
from netutil import wait_until
from load import fixed_calls
from processes import EchoProcess

def three_upstreams():
    return [make_server(0, name=name) for name in ("fast-1", "fast-2", "slow")]


def config(port, upstreams, balancer, extra=""):
    endpoints = ", ".join(f"'127.0.0.1:{u.port if hasattr(u, 'port') else u[1]}'" for u in upstreams)
    return f"""runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: svc}}
services:
  svc:
    endpoints: [{endpoints}]
    balancer: {balancer}
{extra}"""


def drive(target, calls, callers):
    """`calls` unary calls from `callers` threads; returns (latencies s, upstream per call, errors)."""
    outcomes = fixed_calls(target, calls, callers)
    return ([t for t, _, err in outcomes if err is None], [u for _, u, err in outcomes if err is None],
            [err for _, _, err in outcomes if err is not None])


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def test_p2c_peak_ewma_steers_around_a_slow_endpoint(ferry_factory):
    """5,000 calls from 20 concurrent callers at 1,000 calls/s, then 5,000 more flat out.

    The paced run measures latency where latency means something: flat out, 20 callers
    saturate this machine's 2 cores and every call's latency is mostly queueing (in the Python
    client and servers), so the fast endpoints' latency peaks reach ~20 ms and a balancer
    that multiplies its estimate by the calls outstanding keeps about one call at the 50 ms
    endpoint. The flat-out run shows the share stays small even then."""
    servers = [EchoProcess("fast-1"), EchoProcess("fast-2"), EchoProcess("slow", "--delay-ms", "50")]
    results = {}
    try:
        for balancer, rate in (("p2c-peak-ewma", 1000), ("round-robin", 1000), ("p2c-peak-ewma", None)):
            port = free_port()
            ferry = ferry_factory(config=config(port, servers, balancer), ports={"in": port})
            started = time.monotonic()
            outcomes = fixed_calls(ferry.target, 5000, 20, rate=rate)
            achieved = len(outcomes) / (time.monotonic() - started)
            errors = [err for _, _, err in outcomes if err is not None]
            assert errors == [], errors[:3]
            everyone = [t for t, _, _ in outcomes]
            fast = [t for t, u, _ in outcomes if u != "slow"]
            results[balancer, rate] = (sum(1 for _, u, _ in outcomes if u == "slow") / len(outcomes), achieved,
                                       percentile(everyone, 0.99), percentile(fast, 0.99))
            ferry.exit_expected = True
            assert ferry.stop() == 0
    finally:
        for server in servers:
            server.stop()
    for (balancer, rate), (share, achieved, p99, fast_p99) in results.items():
        print(f"{balancer}, {'paced' if rate else 'flat out'} ({achieved:,.0f} calls/s): slow endpoint got "
              f"{share * 100:.2f}% of 5000 calls from 20 callers; client p99 {p99 * 1000:.1f} ms "
              f"(calls the fast endpoints answered: p99 {fast_p99 * 1000:.1f} ms)")
    # The shares are the behaviour; the latencies above are printed, not asserted: with a CPU hog
    # beside the suite (stress-ng --cpu 2) the slow endpoint's < 2% of calls reached the client's
    # p99 (55.9 ms against the fast endpoints' 16.7 ms), where on a quiet machine it stays out.
    # The slow endpoint's share under P2C-PeakEWMA: 0.2-1.8% on a quiet machine, 1.2-3.9% with
    # `stress-ng --cpu 2` beside the suite (the fast endpoints' Python servers slow down too, so
    # the gap between the estimates narrows), for this build and the one before it alike. The
    # numbers are printed above; what holds on a busy machine is the steering itself: a small
    # fraction of round-robin's third (a balancer that stopped steering gives it ~33%).
    assert results["p2c-peak-ewma", 1000][0] < 0.10, results
    assert results["p2c-peak-ewma", None][0] < 0.10, results
    assert 0.28 < results["round-robin", 1000][0] < 0.39, results


def test_a_failing_endpoint_is_ejected_probed_once_per_backoff_and_restored(ferry_factory):
    servers = three_upstreams()
    bad = servers[2][2]
    bad.unary_fails = grpc.StatusCode.UNAVAILABLE
    port = free_port()
    ferry = ferry_factory(config=config(port, servers, "p2c-least-request"), ports={"in": port})
    stop = threading.Event()
    outcomes = []

    def load():
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            stub = channel.unary_unary("/ferry.test.Echo/Unary")
            while not stop.is_set():
                try:
                    stub(b"x", timeout=5)
                    outcomes.append(True)
                except grpc.RpcError:
                    outcomes.append(False)
                time.sleep(0.002)

    threads = [threading.Thread(target=load) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(4.5)                                   # ejected at once, then probes at ~1 s, ~3 s (backoff 1 s, 2 s)
        with bad.lock:
            times = list(bad.call_times)
        recovered_at = time.monotonic()
        bad.unary_fails = None                            # the endpoint recovers
        assert wait_until(lambda: len(bad.call_times) > len(times) + 20, 10.0), "never back in rotation"
        with bad.lock:
            back = bad.call_times[len(times)]
    finally:
        stop.set()
        for t in threads:
            t.join()
        for server, _, _ in servers:
            server.stop(grace=None)
    # Ejected at its 7th consecutive failure (accrual is shared by both event loops): the burst
    # holds those 7 plus at most the calls already sent on their way when the 7th came back.
    assert len(times) >= 7
    burst_end = next((i for i in range(1, len(times)) if times[i] - times[i - 1] > 0.3), len(times))
    burst, probes = times[:burst_end], times[burst_end:]
    assert 7 <= len(burst) <= 9, burst
    # ...then at most one call per backoff window while ejected: 1 s, then 2 s (jittered down to half at worst).
    gaps = [b - a for a, b in zip([burst[-1]] + probes, probes)]
    assert 1 <= len(probes) <= 3, (probes, gaps)
    assert all(g >= 0.5 for g in gaps), gaps
    # Back within one backoff (at most 4 s at this point) after it recovered.
    assert back - recovered_at < 4.5
    ok = sum(outcomes)
    print(f"failure accrual: the failing endpoint got {len(times)} calls in 4.5 s "
          f"({len(burst)} before the ejection took hold, then probes after {', '.join(f'{g:.2f}' for g in gaps)} s); back {back - recovered_at:.2f} s "
          f"after recovering; client success {ok}/{len(outcomes)} = {ok / len(outcomes) * 100:.2f}%")


def test_an_upstream_that_stops_answering_is_caught_by_keepalive(ferry_factory):
    stuck = H2Upstream(stop_reading=True)
    try:
        port = free_port()
        ferry = ferry_factory(config=f"""listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: s}}
services:
  s:
    endpoints: ["127.0.0.1:{stuck.port}"]
    keepalive: {{interval: 200ms, timeout: 300ms}}
    retry: false
""", ports={"in": port})
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary("/hang")(b"", timeout=10)
            elapsed = time.monotonic() - t0
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "was lost" in err.value.details(), err.value.details()
        assert 0.4 <= elapsed < 1.5, elapsed
        assert "no answer to PING" in ferry.logs()
    finally:
        stuck.stop()


def test_load_shedding_fails_fast_over_the_service_limit(ferry_factory):
    server, upstream_port, state = make_server(0, name="slow")
    state.unary_delay = 0.3
    try:
        port = free_port()
        ferry = ferry_factory(config=f"""listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: s}}
services:
  s:
    endpoints: ["127.0.0.1:{upstream_port}"]
    max_concurrent_calls: 5
""", ports={"in": port})
        latencies, upstreams, errors = drive(ferry.target, 12, 12)
        shed = [e for e in errors if e[0] == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(upstreams) == 5 and len(shed) == 7, (upstreams, errors)
        assert shed[0][1] == 'ferry: service "s" is at its limit of 5 calls in flight'
        # Slots come back when calls end: the next round is served again.
        _, upstreams, errors = drive(ferry.target, 5, 5)
        assert len(upstreams) == 5 and errors == []
        assert state.calls == 10
    finally:
        server.stop(grace=None)
