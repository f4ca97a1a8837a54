"""Traffic splitting and header routes, with grpcio upstreams and clients: a route's calls
shared between services by weight (canary, blue/green), a header sending its callers to the
canary, and weights shifted by hot reload under load without a failed call."""
import collections
import signal
import time

import pytest

from conftest import free_port
from echo_server import make_server
from load import Load, fixed_calls
from netutil import wait_until


@pytest.fixture
def versions():
    """Two versions of one app, each a grpcio server naming itself in `x-upstream`."""
    servers = {name: make_server(0, name=name) for name in ("stable", "canary")}
    yield {name: port for name, (_, port, _) in servers.items()}
    for server, _, _ in servers.values():
        server.stop(grace=None)


def config(port, admin, ports, stable, canary):
    return f"""admin: {{address: "127.0.0.1:{admin}", metrics: true}}
runtime: {{event_loops: 2}}
listeners:
  - name: in
    address: 127.0.0.1:{port}
    routes:
      - match: {{method: "ferry.test.Echo/*", headers: [{{name: x-canary, exact: "always"}}]}}
        service: canary
      - match: {{method: "ferry.test.Echo/*"}}
        split:
          - {{service: stable, weight: {stable}}}
          - {{service: canary, weight: {canary}}}
services:
  stable: {{endpoints: ["127.0.0.1:{ports['stable']}"]}}
  canary: {{endpoints: ["127.0.0.1:{ports['canary']}"]}}
"""


def start(ferry_factory, versions, stable, canary):
    port, admin = free_port(), free_port()
    ferry = ferry_factory(config=config(port, admin, versions, stable, canary), ports={"in": port}, admin_port=admin)
    ferry.write = lambda s, c: ferry.write_config(config(port, admin, versions, s, c))
    return ferry


def test_a_split_gives_each_service_its_weights_share_of_10000_calls(versions, ferry_factory):
    ferry = start(ferry_factory, versions, 90, 10)
    outcomes = fixed_calls(ferry.target, 10_000, 8)
    failed = [o for o in outcomes if o[2] is not None]
    assert not failed, failed[:3]
    shares = collections.Counter(o[1] for o in outcomes)
    # 10,000 draws at 10%: one standard deviation is 0.3 points, so 2 points is far outside chance.
    assert abs(shares["canary"] / 10_000 - 0.10) < 0.02, shares
    assert shares["stable"] + shares["canary"] == 10_000, shares
    # Each service's calls count under its own name.
    counted = {s: ferry.metric_sum("ferry_requests_total", f'service="{s}"') for s in versions}
    assert counted == {"stable": shares["stable"], "canary": shares["canary"]}, (counted, shares)


def test_a_header_route_sends_its_callers_to_the_canary_whatever_the_split(versions, ferry_factory):
    ferry = start(ferry_factory, versions, 100, 0)
    asked = fixed_calls(ferry.target, 300, 4, metadata=[("x-canary", "always")])
    others = fixed_calls(ferry.target, 300, 4, metadata=[("x-canary", "sometimes")])
    assert {o[1] for o in asked} == {"canary"}, collections.Counter(o[1] for o in asked)
    assert {o[1] for o in others} == {"stable"}, collections.Counter(o[1] for o in others)


def test_weights_shifted_by_reload_under_load_fail_no_call(versions, ferry_factory):
    ferry = start(ferry_factory, versions, 100, 0)
    load = Load(ferry.target, threads=6).start()
    phases = []
    try:
        # A canary rollout: 0% -> 10% -> 50% -> 100%, by the file watcher and by SIGHUP.
        for i, (stable, canary) in enumerate([(100, 0), (90, 10), (50, 50), (0, 100)]):
            if i:
                before = ferry.count_in_logs("configuration reloaded")
                ferry.write(stable, canary)
                if i % 2:
                    ferry.proc.send_signal(signal.SIGHUP)
                assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") > before, 5.0), ferry.logs()[-2000:]
                # Calls that started under the old weights finish there (up to one a caller).
                time.sleep(0.2)
            since = time.monotonic()
            assert wait_until(lambda: sum(load.upstreams_since(since).values()) >= 400, 30.0), load.summary()
            phases.append((canary, load.upstreams_since(since)))
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    for canary, seen in phases:
        share = seen["canary"] / sum(seen.values())
        # At least 400 calls a phase: 5 standard deviations of a 50% share is 12.5 points.
        assert abs(share - canary / 100) <= 0.15, phases
    assert phases[0][1]["canary"] == 0 and phases[-1][1]["stable"] == 0, phases
