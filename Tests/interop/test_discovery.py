"""Service discovery under load: an endpoints file and real DNS (dnsmasq) change while calls flow;
no call fails, traffic follows within one refresh, removed endpoints drain."""
import shutil
import struct
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, free_port
from dnsmasq import DnsServer, write_atomically
from echo_server import make_server
from load import Load
from netutil import wait_until


def upstream(name, host="127.0.0.1", port=0):
    server, bound, state = make_server(port, name=name, host=host)
    return server, bound, state


def single_service_config(port, discovery, extra=""):
    return f"""
runtime: {{event_loops: 2}}
listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: svc}}
services:
  svc:
    connect_timeout: 500ms
    discovery: {discovery}
{extra}"""


# ---------------------------------------------------------------- file


def test_file_discovery_moves_traffic_and_keeps_the_last_good_set(ferry_factory, tmp_path):
    servers = [upstream("alpha"), upstream("beta")]
    (_, alpha, _), (_, beta, _) = servers
    eps = str(tmp_path / "endpoints.yaml")
    write_atomically(eps, f"endpoints: ['127.0.0.1:{alpha}']\n")
    port = free_port()
    ferry = ferry_factory(config=single_service_config(port, f"{{file: {{path: {eps}, interval: 100ms}}}}"), ports={"in": port})
    load = Load(ferry.target).start()
    try:
        time.sleep(1.0)
        assert set(load.upstreams_since(0)) == {"alpha"}
        changed = time.monotonic()
        write_atomically(eps, f"- 127.0.0.1:{beta}\n")                    # the list form, and a new endpoint
        assert wait_until(lambda: load.first_call_to("beta", changed), 2.0)
        assert load.first_call_to("beta", changed) - changed < 0.5        # interval 100 ms
        time.sleep(0.5)
        assert set(load.upstreams_since(time.monotonic() - 0.3)) == {"beta"}

        write_atomically(eps, "endpoints: [127.0.0.1:99999]\n")          # invalid: the last good set stays
        time.sleep(0.6)
        assert "discovery failed; keeping the last endpoints" in ferry.logs()
        assert "endpoints.yaml:1:13: endpoints[0]: port must be" in ferry.logs()
        assert set(load.upstreams_since(time.monotonic() - 0.3)) == {"beta"}

        both = time.monotonic()
        write_atomically(eps, f"endpoints: ['127.0.0.1:{alpha}', '127.0.0.1:{beta}']\n")
        assert wait_until(lambda: load.first_call_to("alpha", both), 2.0)
        time.sleep(0.5)
        assert set(load.upstreams_since(time.monotonic() - 0.3)) == {"alpha", "beta"}
    finally:
        load.stop()
        for server, _, _ in servers:
            server.stop(grace=None)
    print("file discovery load:", load.summary())
    assert load.failures == [], load.failures[:5]


def test_a_removed_endpoint_drains_its_streams(ferry_factory, tmp_path):
    servers = [upstream("alpha"), upstream("beta")]
    (_, alpha, alpha_state), (_, beta, _) = servers
    eps = str(tmp_path / "endpoints.yaml")
    write_atomically(eps, f"endpoints: ['127.0.0.1:{alpha}']\n")
    port = free_port()
    ferry = ferry_factory(config=single_service_config(port, f"{{file: {{path: {eps}, interval: 100ms}}}}"), ports={"in": port})
    try:
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            # 10 messages of 1 KiB, 150 ms apart: still streaming when alpha leaves the service.
            stream = channel.unary_stream("/ferry.test.Echo/ServerStream")(struct.pack(">III", 10, 1024, 150), timeout=10)
            first = next(stream)
            write_atomically(eps, f"endpoints: ['127.0.0.1:{beta}']\n")
            time.sleep(0.5)
            # New calls already go to beta while the old stream goes on.
            _, call = channel.unary_unary("/ferry.test.Echo/Unary").with_call(b"x", timeout=5)
            assert dict(call.initial_metadata())["x-upstream"] == "beta"
            rest = list(stream)
            assert len(rest) + 1 == 10 and all(len(m) == 1024 for m in [first] + rest)
            assert stream.code() == grpc.StatusCode.OK
    finally:
        for server, _, _ in servers:
            server.stop(grace=None)


# ---------------------------------------------------------------- DNS


def Dnsmasq(*args, **kwargs):
    if not shutil.which("dnsmasq"):
        pytest.skip("dnsmasq is not installed (scripts/setup installs dnsmasq-base)")
    return DnsServer(*args, **kwargs)


def same_port_on(hosts):
    """grpcio upstreams on the same port at several loopback addresses (A records carry no port)."""
    first_server, port, _ = upstream(hosts[0][1], host=hosts[0][0])
    servers = [(first_server, port)]
    for host, name in hosts[1:]:
        server, _, _ = upstream(name, host=host, port=port)
        servers.append((server, port))
    return [s for s, _ in servers], port


def test_dns_changes_move_traffic_within_one_ttl_under_load(ferry_factory):
    servers, upstream_port = same_port_on([("127.0.0.2", "alpha"), ("127.0.0.3", "beta")])
    dns = Dnsmasq("127.0.0.2 svc.test\n")
    port = free_port()
    ferry = ferry_factory(config=single_service_config(
        port, f"{{dns: {{name: svc.test, port: {upstream_port}, resolver: '127.0.0.1:{dns.port}'}}}}"), ports={"in": port})
    load = Load(ferry.target, threads=6).start()
    try:
        time.sleep(1.5)
        assert set(load.upstreams_since(0)) == {"alpha"}

        changed = time.monotonic()
        dns.set_hosts("127.0.0.3 svc.test\n")
        assert wait_until(lambda: load.first_call_to("beta", changed), 3.0), load.summary()
        moved = load.first_call_to("beta", changed) - changed
        time.sleep(1.2)
        last_alpha = load.last_call_to("alpha") - changed
        assert set(load.upstreams_since(time.monotonic() - 0.5)) == {"beta"}

        both = time.monotonic()
        dns.set_hosts("127.0.0.2 svc.test\n127.0.0.3 svc.test\n")
        assert wait_until(lambda: load.first_call_to("alpha", both), 3.0)
        time.sleep(1.0)
        assert set(load.upstreams_since(time.monotonic() - 0.5)) == {"alpha", "beta"}

        # The resolver dies: the last good answer stays and calls go on.
        dns.stop()
        assert wait_until(lambda: "discovery failed; keeping the last endpoints" in ferry.logs(), 8.0)
        noticed = time.monotonic()
        time.sleep(1.5)
        assert set(load.upstreams_since(noticed)) == {"alpha", "beta"}
    finally:
        load.stop()
        dns.stop()
        for server in servers:
            server.stop(grace=None)
    print(f"DNS load: {load.summary()}; traffic moved {moved * 1000:.0f} ms after the record changed "
          f"(TTL 1 s), last call to the old address {last_alpha * 1000:.0f} ms after")
    assert load.failures == [], load.failures[:5]
    # A load, not a rate: on a shared machine the rate is whatever the CPU allows (bench/ measures it).
    assert load.ok >= 200, load.summary()
    assert moved < 1.0 + 0.3, f"traffic moved {moved:.2f}s after the change (TTL 1 s)"


def test_dns_srv_records_give_ports_and_follow_a_restarted_server(ferry_factory):
    s1, p1, _ = upstream("alpha")
    s2, p2, _ = upstream("beta")
    dns = Dnsmasq("127.0.0.1 a.svc.test\n", srv=[f"_grpc._tcp.svc.test,a.svc.test,{p1},0,10"])
    port = free_port()
    ferry = ferry_factory(config=single_service_config(
        port, f"{{dns: {{name: _grpc._tcp.svc.test, record: SRV, resolver: '127.0.0.1:{dns.port}'}}}}"), ports={"in": port})
    load = Load(ferry.target, threads=4).start()
    try:
        time.sleep(1.0)
        assert set(load.upstreams_since(0)) == {"alpha"}
        changed = time.monotonic()
        # A new SRV set means a restart: the resolver is briefly gone (last good kept), then answers anew.
        dns.restart([f"_grpc._tcp.svc.test,a.svc.test,{p2},0,10"])
        assert wait_until(lambda: load.first_call_to("beta", changed), 5.0), load.summary()
        time.sleep(1.2)
        assert set(load.upstreams_since(time.monotonic() - 0.5)) == {"beta"}
    finally:
        load.stop()
        dns.stop()
        s1.stop(grace=None)
        s2.stop(grace=None)
    print("DNS SRV load:", load.summary())
    assert load.failures == [], load.failures[:5]


def test_dns_aaaa_records_reach_an_ipv6_upstream(ferry_factory):
    try:
        server, upstream_port, _ = upstream("v6", host="[::1]")
    except RuntimeError:
        pytest.skip("no IPv6 loopback")
    dns = Dnsmasq("::1 v6.test\n127.0.0.9 v4only.test\n")
    port = free_port()
    ferry = ferry_factory(config=single_service_config(
        port, f"{{dns: {{name: v6.test, record: AAAA, port: {upstream_port}, resolver: '127.0.0.1:{dns.port}'}}}}"),
        ports={"in": port})
    try:
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            for _ in range(20):
                _, call = channel.unary_unary("/ferry.test.Echo/Unary").with_call(b"x", timeout=5)
                assert dict(call.initial_metadata())["x-upstream"] == "v6"
    finally:
        dns.stop()
        server.stop(grace=None)


def test_a_name_that_does_not_resolve_is_logged_and_named_by_ready(ferry_factory):
    server, p, _ = upstream("alpha")
    dns = Dnsmasq("127.0.0.1 other.svc.test\n")
    port, admin = free_port(), free_port()
    ferry = ferry_factory(config=f"admin: {{address: '127.0.0.1:{admin}'}}\n" + single_service_config(
        port, f"{{dns: {{name: missing.svc.test, port: {p}, resolver: '127.0.0.1:{dns.port}'}}}}"),
        ports={"in": port}, admin_port=admin)
    try:
        answer = f"127.0.0.1:{dns.port} answered missing.svc.test A+AAAA with NXDOMAIN"
        status, reason = ferry.admin("/ready")
        assert status == 503, reason
        assert reason == f'service "svc" has no endpoints (discovery: DNS A+AAAA missing.svc.test: {answer})\n', reason
        found = [r for r in ferry.log_records() if r["msg"] == "discovery found no endpoints"]
        assert found and found[0]["service"] == "svc" and found[0]["answer"] == answer, found
        # The name appears: the watcher's next read finds it, /ready is ready, calls flow.
        dns.set_hosts("127.0.0.1 missing.svc.test\n")
        assert wait_until(lambda: ferry.admin("/ready")[0] == 200, 10), ferry.admin("/ready")
        assert ferry.admin("/ready")[1] == "ready\n"
        with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
            assert channel.unary_unary("/ferry.test.Echo/Unary")(b"x", timeout=5) == b"x"
    finally:
        dns.stop()
        server.stop(grace=None)
