"""Hot reload: SIGHUP or a changed file swaps the configuration in without failing a call; an
invalid one is rejected with its location and the running one keeps serving."""
import signal
import socket
import struct
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, free_port
from echo_server import make_server
from load import Load
from netutil import wait_until


@pytest.fixture
def two_upstreams():
    servers = [make_server(0, name=name) for name in ("alpha", "beta")]
    yield {name: port for name, (_, port, _) in zip(("alpha", "beta"), servers)}
    for server, _, _ in servers:
        server.stop(grace=None)


def config(port, ports, target, extra_listener="", stream_timeout=None):
    method = f"\n    methods: [{{match: ferry.test.Echo/ServerStream, timeout: {stream_timeout}}}]" if stream_timeout else ""
    return f"""runtime: {{event_loops: 2}}
listeners:
  - name: in
    address: 127.0.0.1:{port}
    routes:
      - {{match: {{method: "ferry.test.Echo/*"}}, service: {target}}}
{extra_listener}services:
  alpha:
    endpoints: ["127.0.0.1:{ports['alpha']}"]{method if target == 'alpha' else ''}
  beta:
    endpoints: ["127.0.0.1:{ports['beta']}"]{method if target == 'beta' else ''}
"""


# Invalid edits of a valid config, each with the location and words the rejection must name.
BROKEN = [
    (lambda c: c.replace("endpoints:", "endpoint:", 1), ":9:5: services.alpha.endpoint: unknown key"),
    (lambda c: c.replace("service: alpha", "service: gamma").replace("service: beta", "service: gamma"),
     ': listeners[0].routes[0].service: no service named "gamma"'),
    (lambda c: c.replace('"ferry.test.Echo/*"', '"ferry.test.Echo"'), "listeners[0].routes[0].match.method: expected"),
    (lambda c: c.replace("routes:", "routes: [", 1), "YAML syntax"),
    (lambda c: c.replace("event_loops: 2", "event_loops: 0"), "runtime.event_loops: must be from 1 to 256"),
]


def test_twenty_reloads_valid_and_invalid_under_load_fail_no_call(two_upstreams, ferry_factory):
    port = free_port()
    ferry = ferry_factory(config=config(port, two_upstreams, "alpha"), ports={"in": port})
    load = Load(ferry.target, threads=6).start()
    target = "alpha"
    moves = []
    try:
        time.sleep(0.5)
        for i in range(20):
            use_signal = i % 4 < 2                       # half by SIGHUP, half by the file watcher
            if i % 2 == 0:                               # valid: the route moves to the other service
                target = "beta" if target == "alpha" else "alpha"
                before = ferry.count_in_logs("configuration reloaded")
                ferry.write_config(config(port, two_upstreams, target))
                changed = time.monotonic()
                if use_signal:
                    ferry.proc.send_signal(signal.SIGHUP)
                assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") > before, 3.0), ferry.logs()[-2000:]
                assert wait_until(lambda: load.first_call_to(target, changed), 3.0), load.summary()
                moves.append(load.first_call_to(target, changed) - changed)
                time.sleep(0.3)
                assert set(load.upstreams_since(time.monotonic() - 0.2)) == {target}
            else:                                        # invalid: rejected, precisely, and nothing changes
                breaks, expected = BROKEN[(i // 2) % len(BROKEN)]
                before = ferry.count_in_logs("configuration rejected")
                ferry.write_config(breaks(config(port, two_upstreams, target)))
                if use_signal:
                    ferry.proc.send_signal(signal.SIGHUP)
                assert wait_until(lambda: ferry.count_in_logs("configuration rejected") > before, 3.0), ferry.logs()[-2000:]
                rejection = [r for r in ferry.log_records() if r["msg"].startswith("configuration rejected")][-1]["error"]
                assert f"{ferry.config_path}" in rejection and expected in rejection, rejection
                time.sleep(0.3)
                assert set(load.upstreams_since(time.monotonic() - 0.2)) == {target}
    finally:
        load.stop()
    print(f"20 reloads under load: {load.summary()}; new target's first call "
          f"{min(moves) * 1000:.0f}..{max(moves) * 1000:.0f} ms after the change")
    assert load.failures == [], load.failures[:5]
    # A load, not a rate: on a shared machine the rate is whatever the CPU allows (bench/ measures it).
    assert load.ok >= 200, load.summary()
    assert ferry.count_in_logs("configuration reloaded") == 10
    assert ferry.count_in_logs("configuration rejected") == 10


def test_calls_in_flight_finish_under_the_config_they_started_with(two_upstreams, ferry_factory):
    port = free_port()
    ferry = ferry_factory(config=config(port, two_upstreams, "alpha"), ports={"in": port})
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        slow = struct.pack(">III", 8, 512, 100)        # 8 messages, 100 ms apart
        stream = channel.unary_stream("/ferry.test.Echo/ServerStream")(slow, timeout=10)
        next(stream)
        # The new config sends the method elsewhere with a 150 ms timeout; the call in flight keeps
        # its upstream and its (absent) timeout.
        ferry.write_config(config(port, two_upstreams, "beta", stream_timeout="150ms"))
        ferry.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") == 1, 3.0)
        rest = list(stream)
        assert stream.code() == grpc.StatusCode.OK and len(rest) + 1 == 8
        # A new call gets the new config's method timeout (150 ms, where the caller gave 10 s).
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            list(channel.unary_stream("/ferry.test.Echo/ServerStream")(slow, timeout=10))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5
        # Whichever ends it first: Ferry, or the upstream's C-core holding the propagated
        # grpc-timeout (seen first on a busy machine).
        assert "services.beta.methods[0]" in err.value.details() or err.value.details() == "Deadline Exceeded", err.value.details()


def test_listeners_come_and_go_with_the_config_and_a_bind_failure_rejects_it(two_upstreams, ferry_factory):
    port, second = free_port(), free_port()
    ferry = ferry_factory(config=config(port, two_upstreams, "alpha"), ports={"in": port})
    extra = f"  - {{name: second, address: '127.0.0.1:{second}', service: beta}}\n"
    ferry.write_config(config(port, two_upstreams, "alpha", extra_listener=extra))
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") == 1, 3.0)
    with grpc.insecure_channel(f"127.0.0.1:{second}", options=CHANNEL_OPTIONS) as channel:
        _, call = channel.unary_unary("/ferry.test.Echo/Unary").with_call(b"x", timeout=5)
        assert dict(call.initial_metadata())["x-upstream"] == "beta"

    # A listener on an address in use: the whole reload is rejected; both listeners keep serving.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    third = f"  - {{name: third, address: '127.0.0.1:{taken}', service: beta}}\n"
    ferry.write_config(config(port, two_upstreams, "beta", extra_listener=extra + third))
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.count_in_logs("configuration could not be applied") == 1, 3.0), ferry.logs()[-1500:]
    busy.close()
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        _, call = channel.unary_unary("/ferry.test.Echo/Unary").with_call(b"x", timeout=5)
        assert dict(call.initial_metadata())["x-upstream"] == "alpha", "a rejected reload changed the routes"

    # The second listener leaves the config: its port stops accepting.
    ferry.write_config(config(port, two_upstreams, "alpha"))
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") == 2, 3.0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", second), timeout=2).close()


def test_a_reload_logs_what_changed_and_new_listeners_and_is_counted(two_upstreams, ferry_factory):
    port, second, admin = free_port(), free_port(), free_port()
    admin_line = f"admin: {{address: '127.0.0.1:{admin}', metrics: true}}\n"
    ferry = ferry_factory(config=admin_line + config(port, two_upstreams, "alpha"), ports={"in": port}, admin_port=admin)
    started = ferry.metric_sum("ferry_config_last_reload_success_timestamp_seconds")
    assert time.time() - 60 < started <= time.time() + 1
    extra = f"  - {{name: second, address: '127.0.0.1:{second}', service: beta}}\n"
    ferry.write_config(admin_line + config(port, two_upstreams, "beta", extra_listener=extra).replace(
        f'endpoints: ["127.0.0.1:{two_upstreams["beta"]}"]', f'endpoints: ["127.0.0.1:{two_upstreams["beta"]}"]\n    timeout: 3s'))
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") == 1, 3.0), ferry.logs()[-1500:]
    reloaded = next(r for r in ferry.log_records() if r["msg"] == "configuration reloaded")
    assert reloaded["changed"] == (f"listener in changed; listener second added on 127.0.0.1:{second}; "
                                   "service beta changed (policy)"), reloaded
    listening = [r for r in ferry.log_records() if r["msg"] == "listening" and r.get("listener") == "second"]
    assert listening and listening[0]["address"] == f"127.0.0.1:{second}", ferry.logs()[-1500:]
    assert ferry.metric_sum("ferry_config_reloads_total", 'result="ok"') == 1

    ferry.write_config("listeners: [\n")
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.metric_sum("ferry_config_reloads_total", 'result="rejected"') == 1, 3.0), ferry.logs()[-1500:]
    # A listener on an address in use: rejected too, naming the listener and the address.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    third = f"  - {{name: third, address: '127.0.0.1:{taken}', service: beta}}\n"
    ferry.write_config(admin_line + config(port, two_upstreams, "alpha", extra_listener=third))
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.metric_sum("ferry_config_reloads_total", 'result="rejected"') == 2, 3.0), ferry.logs()[-1500:]
    busy.close()
    failed = next(r for r in ferry.log_records() if r["msg"] == "configuration could not be applied; the running one stays")
    assert "third" in failed["error"] and f"127.0.0.1:{taken}" in failed["error"], failed
    assert ferry.metric_sum("ferry_config_reloads_total", 'result="ok"') == 1
    assert ferry.metric_sum("ferry_config_last_reload_success_timestamp_seconds") >= started
