"""Client churn: every connection a client opens and closes is let go of entirely (its nghttp2
session deleted, its objects freed), however it ends, so memory does not grow with the number
of connections ever accepted."""
import multiprocessing
import re

from raw_h2 import CHURN_MODES, churn
from netutil import wait_until


def churn_in_parallel(port, count, workers=2):
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.starmap(churn, [(port, count // workers)] * workers)
    return sum(sum(r.values()) for r in results)


def gauge(ferry, name):
    _, text = ferry.admin("/metrics")
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            total += float(m.group(2))
    return total


def sessions_settled(ferry):
    """Every nghttp2 session left belongs to an open upstream connection, and no closed
    connection object is still held."""
    upstream = gauge(ferry, "ferry_endpoint_connections")
    return (gauge(ferry, "ferry_h2_sessions") == upstream and gauge(ferry, "ferry_h2_connection_objects") == upstream
            and gauge(ferry, "ferry_downstream_connections") == 0)


def test_rss_stays_flat_over_20000_connections_opened_and_closed(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    # Warm up: pools, allocator arenas and free lists reach their working size.
    assert churn_in_parallel(ferry.port, 1000) == 1000
    assert wait_until(lambda: sessions_settled(ferry), timeout=10), "sessions left after 1,000 connections"
    rss_after_1000 = ferry.rss_kib()
    assert churn_in_parallel(ferry.port, 19000) == 19000
    assert wait_until(lambda: sessions_settled(ferry), timeout=10), "sessions left after 20,000 connections"
    rss_after_20000 = ferry.rss_kib()
    growth = rss_after_20000 - rss_after_1000
    print(f"RSS after 1,000 connections {rss_after_1000} KiB, after 20,000 {rss_after_20000} KiB "
          f"({growth / 19000 * 1024:.1f} bytes per connection); modes {CHURN_MODES}")
    # A leak of even 1 KiB per connection would be 19 MiB here (it was 22-100 KiB).
    assert growth < 4 * 1024, f"RSS grew {growth} KiB over 19,000 connections"
    assert ferry.alive()
