"""Two nodes: two network namespaces joined by a veth pair, a private /30 between them.

Node A: the app (a grpcio client) and the outbound Ferry, plaintext on A's loopback, which
sends to node B over mutual TLS. Node B: two inbound Ferrys (mTLS, authorization by identity)
in front of a grpcio server on B's loopback; the second one cannot reach its app and refuses
every call with UNAVAILABLE. Everything between the namespaces is TLS; the namespaces, their
addresses and their processes are the test's own and go away after it.

Needs root (ip netns). `tc netem` adds 5 ms of delay between the nodes where the kernel has it;
the partition is the veth link taken down (the same blackhole as netem loss 100%).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from certs import TRUST_DOMAIN as TD
from certs import make_certs
from conftest import HERE, ferry_binary

PEERS = os.path.join(HERE, "peers")


def sh(*command):
    return subprocess.run(command, check=True, capture_output=True, text=True)


class Node:
    def __init__(self, namespace, address):
        self.namespace = namespace
        self.address = address
        self.processes = []

    def command(self, *command):
        return ["ip", "netns", "exec", self.namespace, *command]

    def start(self, *command, log=None):
        out = open(log, "w") if log else subprocess.DEVNULL
        proc = subprocess.Popen(self.command(*command), stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def run(self, *command, timeout=120):
        return subprocess.run(self.command(*command), capture_output=True, text=True, timeout=timeout)

    def wait_for_port(self, host, port, timeout=15):
        code = (f"import socket,time\nd=time.time()+{timeout}\nwhile True:\n"
                f"  try: socket.create_connection(('{host}',{port}),0.5).close(); break\n"
                f"  except OSError:\n    assert time.time()<d, 'nothing on {host}:{port}'\n    time.sleep(0.05)\n")
        result = self.run(sys.executable, "-c", code, timeout=timeout + 5)
        assert result.returncode == 0, result.stderr

    def get(self, url):
        result = self.run(sys.executable, "-c", f"import urllib.request;print(urllib.request.urlopen('{url}',timeout=5).read().decode())")
        assert result.returncode == 0, result.stderr
        return result.stdout

    def calls(self, target, count, *flags, timeout=120):
        result = self.run(sys.executable, os.path.join(PEERS, "mesh_client.py"), target, str(count), *flags, timeout=timeout)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def stop(self):
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def mesh():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b, veth_a, veth_b = f"ferry-a-{tag}", f"ferry-b-{tag}", f"fva{tag}", f"fvb{tag}"
    subnet = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
    a, b = Node(ns_a, f"{subnet}.1"), Node(ns_b, f"{subnet}.2")
    try:
        sh("ip", "netns", "add", ns_a)
        sh("ip", "netns", "add", ns_b)
        sh("ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        sh("ip", "link", "set", veth_a, "netns", ns_a)
        sh("ip", "link", "set", veth_b, "netns", ns_b)
        for node, veth in ((a, veth_a), (b, veth_b)):
            sh("ip", "-n", node.namespace, "addr", "add", f"{node.address}/30", "dev", veth)
            sh("ip", "-n", node.namespace, "link", "set", veth, "up")
            sh("ip", "-n", node.namespace, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot make network namespaces here: {e.stderr.strip()}")
    netem = subprocess.run(["ip", "netns", "exec", ns_a, "tc", "qdisc", "add", "dev", veth_a, "root", "netem", "delay", "5ms"],
                           capture_output=True, text=True).returncode == 0

    certs = tempfile.mkdtemp(prefix="ferry-mesh-")
    make_certs(certs, "node-a", "node-b")
    b.start(sys.executable, os.path.join(PEERS, "echo_server.py"), "--port", "50051", "--name", "node-b-app")
    b.wait_for_port("127.0.0.1", 50051)
    for name, port, app in (("b1", 4143, 50051), ("b2", 4144, 50059)):
        path = os.path.join(certs, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(f"""
runtime: {{event_loops: 1, drain_timeout: 1s}}
listeners:
  - name: from-mesh
    address: {b.address}:{port}
    service: app
    tls: {{certificate: {certs}/node-b.pem, key: {certs}/node-b-key.pem, client_ca: {certs}/ca.pem}}
    authorization: {{allow: ["{TD}/ns/default/sa/node-a"]}}
services:
  app:
    endpoints: ["127.0.0.1:{app}"]
    connect_timeout: 200ms
    failure_accrual: {{consecutive_failures: 0}}
""")
        b.start(ferry_binary(), "run", "--config", path, "--log-level", "info", log=os.path.join(certs, f"{name}.log"))
        b.wait_for_port(b.address, port)
    config_a = os.path.join(certs, "a.yaml")
    with open(config_a, "w") as f:
        f.write(f"""
admin: {{address: 127.0.0.1:9990, metrics: true}}
runtime: {{event_loops: 2, drain_timeout: 1s}}
listeners:
  - {{name: from-app, address: 127.0.0.1:4140, service: node-b}}
services:
  node-b:
    endpoints: ["{b.address}:4143", "{b.address}:4144"]
    connect_timeout: 500ms
    balancer: round-robin       # so b2, the refusing one, gets calls (it would have to earn them under P2C)
    timeout: 1s
    keepalive: {{interval: 500ms, timeout: 500ms}}
    failure_accrual: {{consecutive_failures: 3, min_backoff: 500ms, max_backoff: 1s}}
    tls:
      ca: {certs}/ca.pem
      certificate: {certs}/node-a.pem
      key: {certs}/node-a-key.pem
      identities: ["{TD}/ns/default/sa/node-b"]
""")
    a.start(ferry_binary(), "run", "--config", config_a, "--log-level", "info", log=os.path.join(certs, "a.log"))
    a.wait_for_port("127.0.0.1", 4140)
    a.wait_for_port("127.0.0.1", 9990)
    yield {"a": a, "b": b, "veth_b": veth_b, "netem": netem, "dir": certs}
    a.stop()
    b.stop()
    for ns in (ns_a, ns_b):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    shutil.rmtree(certs, ignore_errors=True)


def test_calls_cross_the_nodes_over_mtls_with_the_callers_identity_and_a_retry_past_the_refusing_ferry(mesh):
    a = mesh["a"]
    results = a.calls("127.0.0.1:4140", 60)
    failed = [r for r in results if not r["ok"]]
    assert not failed, failed[:3]
    assert {r["client_id"] for r in results} == {f"{TD}/ns/default/sa/node-a"}
    metrics = a.get("http://127.0.0.1:9990/metrics")
    retries = [line for line in metrics.splitlines() if line.startswith('ferry_retries_total{service="node-b"}')]
    with open(os.path.join(mesh["dir"], "b2.log")) as f:
        b2 = f.read()
    assert retries and float(retries[0].split()[-1]) > 0, "no call was refused by b2 and retried on b1:\n" + metrics + b2
    # Nothing between the namespaces is plaintext: node B's listeners only speak TLS.
    with open(os.path.join(mesh["dir"], "b1.log")) as f:
        assert "TLS handshake failed" not in f.read()


def test_the_deadline_is_shortened_at_each_hop(mesh):
    results = mesh["a"].calls("127.0.0.1:4140", 20, "--report-deadline", "--timeout", "5")
    assert all(r["ok"] for r in results), results[:3]
    remaining = [r["remaining"] for r in results]
    # node A's service timeout (1s) is the deadline, not the client's 5 s; node B's Ferry and the
    # app see what is left.
    assert all(0.3 < r < 1.0 for r in remaining), remaining
    # The app's deadline as an instant, against when the client started: node A's 1 s, less
    # nothing a hop spent (each hop sends the time left when it sends), plus only what no hop can
    # see (time on the wire: grpc-timeout is relative). A hop that restarted the budget, or sent
    # what it received without taking off its own time, moves this by that hop's time.
    transit = 0.005 if mesh["netem"] else 0.0
    after = [r["deadline_after"] for r in results]
    assert all(0.9 < d < 1.0 + transit + 0.1 for d in after), after


def test_a_partition_ejects_node_b_calls_fail_fast_and_traffic_returns_when_it_heals(mesh):
    a, b = mesh["a"], mesh["b"]
    link = ["ip", "-n", b.namespace, "link", "set", mesh["veth_b"]]
    client = subprocess.Popen(a.command(sys.executable, os.path.join(PEERS, "mesh_client.py"), "127.0.0.1:4140", "500",
                                        "--timeout", "2", "--interval", "0.05"), stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    cut = time.time()
    sh(*link, "down")
    # Calls on the cut connection end at their deadline (1 s) and count as failures; keepalive
    # (500 ms + 500 ms) closes it; reconnects time out (500 ms). After 3 failures the endpoint is
    # ejected; with both ejected and unreachable, calls fail at once.
    time.sleep(12)
    healed = time.time()
    sh(*link, "up")
    out, _ = client.communicate(timeout=120)
    results = [json.loads(line) for line in out.splitlines()]
    before = [r for r in results if r["t"] < cut]
    late_partition = [r for r in results if cut + 8 < r["t"] - r["seconds"] and r["t"] < healed]
    after = [r for r in results if r["t"] - r["seconds"] > healed + 5]
    assert before and all(r["ok"] for r in before)
    assert late_partition, "no call started late in the partition"
    assert all(r["code"] == "UNAVAILABLE" and "failing fast" in r["details"] for r in late_partition), late_partition[:3]
    assert all(r["seconds"] < 0.5 for r in late_partition), [r["seconds"] for r in late_partition]
    assert after and all(r["ok"] for r in after), [r for r in after if not r["ok"]][:3]
