"""Slow start with grpcio upstreams: an endpoint that joins a serving service (by file
discovery) gets a small share of the calls at first, more through the window, and its full
share after it."""
import os
import time

from conftest import free_port
from echo_server import make_server
from load import Load
from netutil import wait_until

WINDOW = 6.0


def test_a_joining_endpoint_ramps_up_over_the_window(ferry_factory, tmp_path):
    servers = {name: make_server(0, name=name) for name in ("a", "b", "new")}
    try:
        ports = {name: port for name, (_, port, _) in servers.items()}
        eps = str(tmp_path / "endpoints.yaml")

        def write(names):
            with open(eps + ".tmp", "w") as f:
                f.write("endpoints: [" + ", ".join(f"'127.0.0.1:{ports[n]}'" for n in names) + "]\n")
            os.replace(eps + ".tmp", eps)

        write(["a", "b"])
        listen = free_port()
        config = f"""runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: app}}
services:
  app:
    discovery: {{file: {{path: {eps}, interval: 100ms}}}}
    balancer: round-robin
    slow_start: {{window: {int(WINDOW * 1000)}ms, min_weight: 10}}
"""
        ferry = ferry_factory(config=config, ports={"in": listen})
        load = Load(ferry.target, threads=6).start()
        try:
            assert wait_until(lambda: load.ok > 100, 10.0), load.summary()
            write(["a", "b", "new"])
            assert wait_until(lambda: load.upstreams_since(time.monotonic() - 1)["new"] > 0, 5.0), load.summary()
            joined = time.monotonic()
            time.sleep(WINDOW + 2.0)
            done = time.monotonic()
            time.sleep(2.0)
        finally:
            load.stop()
        assert load.failures == [], load.failures[:3]

        def share(start, end):
            with load.lock:
                seen = [u for (t, u) in load.events if start <= t < end]
            return seen.count("new") / max(1, len(seen)), len(seen)

        early, n_early = share(joined, joined + 1.0)          # weight 0.1 .. ~0.27 of 1
        late, n_late = share(joined + WINDOW - 1.5, joined + WINDOW - 0.5)
        after, n_after = share(done, done + 2.0)
        print(f"the joining endpoint's share: first second {early:.1%} ({n_early} calls), "
              f"near the window's end {late:.1%} ({n_late}), after {after:.1%} ({n_after}); an equal share is 33.3%")
        assert early < 0.15, early
        assert early < late < after, (early, late, after)
        assert abs(after - 1 / 3) < 0.05, after
    finally:
        for server, _, _ in servers.values():
            server.stop(grace=None)
