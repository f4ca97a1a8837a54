"""Outlier detection by success rate with grpcio upstreams: five endpoints, one of which fails
a third of its calls (UNAVAILABLE) while the others fail none. Consecutive-failure accrual is
off, so only the success-rate sweep can find it: it is ejected at a sweep and gets no call
after, the others keep every call, and the ejection is logged and counted."""
import time

from conftest import free_port
from echo_server import EchoState, make_server
from load import Load
from netutil import wait_until

INTERVAL = 1.0


def test_the_endpoint_failing_far_more_than_the_others_is_ejected_by_its_success_rate(ferry_factory):
    servers = {}
    for name in ("a", "b", "c", "d", "bad"):
        state = EchoState()
        if name == "bad":
            state.unary_fail_rate = 0.33
        servers[name] = make_server(0, name=name, state=state)
    try:
        listen, admin = free_port(), free_port()
        endpoints = ", ".join(f'"127.0.0.1:{port}"' for (_, port, _) in servers.values())
        config = f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: app}}
services:
  app:
    endpoints: [{endpoints}]
    balancer: round-robin
    retry: false
    failure_accrual:
      consecutive_failures: 0
      min_backoff: 60s
      success_rate: {{interval: {int(INTERVAL * 1000)}ms, min_requests: 20, min_endpoints: 5}}
"""
        ferry = ferry_factory(config=config, ports={"in": listen}, admin_port=admin)
        load = Load(ferry.target, threads=6).start()
        try:
            assert wait_until(lambda: ferry.metric_sum("ferry_endpoint_ejections_total", 'reason="success_rate"') >= 1,
                              10 * INTERVAL + 5), load.summary() + "\n" + ferry.logs()[-2000:]
            ejected = time.monotonic()
            time.sleep(0.5)                  # calls already sent to it finish
            quiet_from = time.monotonic()
            time.sleep(3 * INTERVAL)
        finally:
            load.stop()
        after = load.upstreams_since(quiet_from)
        late_failures = [f for f in load.failures if f[3] >= quiet_from]
        print(f"ejected {ejected - load.started:.1f} s into the load; after it: {dict(after)}, "
              f"{len(late_failures)} failed of {sum(after.values()) + len(late_failures)}")
        assert after["bad"] == 0 and late_failures == [], (after, late_failures[:3])
        assert all(after[n] > 0 for n in ("a", "b", "c", "d")), after
        assert all(f[2].startswith("bad failed") for f in load.failures), load.failures[:3]
        assert ferry.metric_sum("ferry_endpoint_ejections_total", 'reason="success_rate"') == 1
        assert ferry.metric_sum("ferry_endpoint_ejections_total", 'reason="consecutive_failures"') == 0
        bad_address = f"127.0.0.1:{servers['bad'][1]}"
        assert f'ferry_endpoint_state{{service="app",endpoint="{bad_address}",state="ejected"}} 1' in ferry.admin("/metrics")[1]
        line = next(l for l in ferry.logs().splitlines() if "success rate is far below" in l)
        assert bad_address in line and "threshold=" in line and "backoff=" in line, line
    finally:
        for server, _, _ in servers.values():
            server.stop(grace=None)
