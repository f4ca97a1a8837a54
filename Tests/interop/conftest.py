"""Shared fixtures: the Ferry binary under test, free ports, and a Ferry process per test."""
import os
import signal
import subprocess
import sys
import tempfile

import grpc
import pytest

# Generated protobuf modules (test_pb2_grpc.py) are not test files.
collect_ignore_glob = ["generated/*"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "peers"))

MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
                   ("grpc.enable_retries", 0)]


def ferry_binary():
    path = os.environ.get("FERRY_BIN") or os.path.join(ROOT, ".build", "release", "ferry")
    if not os.path.exists(path):
        pytest.exit(f"Ferry binary not found at {path}; build it (scripts/build-ferry) or set FERRY_BIN", 2)
    return path


from netutil import free_port, rss_kib, wait_for_port  # noqa: E402,F401  (re-exported to the tests)


class Ferry:
    """A `ferry run` process with a generated config: one listener per service.

    `endpoints` is a list of upstream ports (one service, "upstream") or a dict
    {service name: [ports]}; `ports[name]` is each service's listener port and `port` the first.
    """

    def __init__(self, endpoints=None, event_loops=2, service_options="", config=None, ports=None, admin_port=None):
        """Either `endpoints` (a generated config), or `config` (YAML text) with the listener `ports` it binds."""
        self.dir = tempfile.mkdtemp(prefix="ferry-test-")
        self.config_path = os.path.join(self.dir, "ferry.yaml")
        if config is None:
            services = endpoints if isinstance(endpoints, dict) else {"upstream": endpoints}
            self.ports = {name: free_port() for name in services}
            self.admin_port = free_port()
            lines = [f"admin:\n  address: 127.0.0.1:{self.admin_port}",
                     f"runtime:\n  event_loops: {event_loops}\n  drain_timeout: 5s", "listeners:"]
            for name, port in self.ports.items():
                lines.append(f"  - {{name: {name}, address: '127.0.0.1:{port}', service: {name}}}")
            lines.append("services:")
            for name, ports in services.items():
                lines.append(f"  {name}:\n    connect_timeout: 500ms")
                lines.append("    endpoints: [" + ", ".join(f"'127.0.0.1:{p}'" for p in ports) + "]")
                if service_options:
                    lines.append(service_options)
            config = "\n".join(lines) + "\n"
        else:
            self.ports = ports
            self.admin_port = admin_port
        self.port = next(iter(self.ports.values()))
        with open(self.config_path, "w") as f:
            f.write(config)
        self.log_path = os.path.join(self.dir, "ferry.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([ferry_binary(), "run", "--config", self.config_path, "--log-level", "info"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            for port in self.ports.values():
                wait_for_port(port)
            # The admin listener starts beside the data listeners, not before them: a test that
            # asks it at once must find it up (seen refused under a CPU hog).
            if self.admin_port and f":{self.admin_port}" in config:
                wait_for_port(self.admin_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError("ferry did not start:\n" + self.logs())
        self.target = f"127.0.0.1:{self.port}"
        self.targets = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}
        self.exit_expected = False   # a test that stops Ferry itself sets this

    def admin(self, path, timeout=5):
        """GET an admin path: (status, body text)."""
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric_sum(self, name, *labels):
        """The sum of the `name` samples in /metrics whose labels contain every `labels` text."""
        _, text = self.admin("/metrics")
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if (line.startswith(name + "{") or line.startswith(name + " ")) and all(label in line for label in labels))

    def write_config(self, text):
        """Replaces the config file atomically (a rename, as deploy tools do)."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def count_in_logs(self, text):
        return self.logs().count(text)

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def log_records(self):
        """The log's lines as dicts, parsed as logfmt (key=value, values quoted with escapes)."""
        return [parse_logfmt(line) for line in self.logs().splitlines() if line.startswith("ts=")]

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def grpc_upstream():
    from echo_server import make_server
    server, port, state = make_server(0)
    yield port, state
    server.stop(grace=None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so fixtures can see whether the test failed."""
    outcome = yield
    setattr(item, "report_" + outcome.get_result().when, outcome.get_result())


@pytest.fixture
def ferry_factory(request):
    started = []

    def start(endpoints=None, **kwargs):
        f = Ferry(endpoints, **kwargs)
        started.append(f)
        return f

    yield start
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        # What Ferry said during a failed test, in the failure's output.
        for f in started:
            print(f"--- ferry log ({f.config_path}) ---\n" + f.logs()[-8000:])
    for f in started:
        alive = f.alive()
        code = f.stop()
        assert alive or f.exit_expected, "ferry exited during the test:\n" + f.logs()
        assert code == 0, f"ferry exited {code} on SIGTERM:\n" + f.logs()


@pytest.fixture
def proxied(grpc_upstream, ferry_factory):
    """(channel through Ferry, upstream state) with a grpcio upstream behind one Ferry."""
    port, state = grpc_upstream
    ferry = ferry_factory([port])
    channel = grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS)
    yield channel, state, ferry
    channel.close()


def assert_still_serving(target):
    """A grpcio call through `target` (a Ferry, or host:port) succeeds: the others are still served."""
    target = getattr(target, "target", target)
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        assert method(channel, "unary_unary", "Unary")(b"fine", timeout=5) == b"fine"


def method(channel, kind, name):
    path = f"/ferry.test.Echo/{name}"
    return getattr(channel, kind)(path)


def parse_logfmt(line):
    """One logfmt line as a dict: `key=value` pairs, a value either bare or double-quoted with
    backslash escapes. Written here from the format's rules, not Ferry's code."""
    record, i, n = {}, 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        start = i
        while i < n and line[i] not in "= ":
            i += 1
        key = line[start:i]
        if i >= n or line[i] != "=":
            if key:
                record[key] = True
            continue
        i += 1
        if i < n and line[i] == '"':
            i += 1
            value = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                    value.append({"n": "\n", "t": "\t", "r": "\r"}.get(line[i], line[i]))
                else:
                    value.append(line[i])
                i += 1
            i += 1
            record[key] = "".join(value)
        else:
            start = i
            while i < n and line[i] != " ":
                i += 1
            record[key] = line[start:i]
    return record
