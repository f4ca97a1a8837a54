"""The access log: one line per call to its own destination (a file, or stdout), as JSON lines
or logfmt, with who called, what, where it went and how it ended; request ids kept, generated
and forwarded as x-request-id; a file reopened on SIGHUP (log rotation); a destination that
cannot be opened refused with its path."""
import json
import os
import re
import signal
import subprocess

import grpc

from conftest import CHANNEL_OPTIONS, ferry_binary, free_port, parse_logfmt
from netutil import wait_until

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CLIENT = re.compile(r"^127\.0\.0\.1:\d+$")


def config(listen, port, access_log, service_extra=""):
    return f"""access_log: {access_log}
listeners:
  - {{name: in, address: "127.0.0.1:{listen}", service: svc, max_deadline: 30s}}
services:
  svc:
    endpoints: ["127.0.0.1:{port}"]
    methods:
      - match: ferry.test.Echo/Unary
        retry: {{on: [UNAVAILABLE], max_attempts: 2, backoff: {{base: 5ms, max: 10ms}}}}
{service_extra}"""


def json_lines(path, want):
    def read():
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f.read().splitlines()]
    assert wait_until(lambda: len(read()) >= want, 5), read()
    return read()


def test_json_lines_to_a_file_with_every_field(grpc_upstream, ferry_factory, tmp_path):
    port, state = grpc_upstream
    listen = free_port()
    path = tmp_path / "access.log"
    ferry = ferry_factory(config=config(listen, port, f"{{path: {path}, format: json}}"), ports={"in": listen})
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        unary = channel.unary_unary("/ferry.test.Echo/Unary")
        for i in range(5):
            assert unary(b"hello", timeout=5, metadata=[("x-request-id", f"client-{i}")]) == b"hello"
        for _ in range(5):
            assert unary(b"x" * 100, timeout=5) == b"x" * 100
        # Fails twice upstream (Trailers-Only): retried once on the same endpoint, UNAVAILABLE
        # reaches the caller.
        state.unary_fails = grpc.StatusCode.UNAVAILABLE
        try:
            unary(b"no", timeout=5)
            assert False, "the upstream answers UNAVAILABLE"
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE
    lines = json_lines(path, 11)
    assert len(lines) == 11, lines
    endpoint = f"127.0.0.1:{port}"
    for line in lines[:10]:
        assert line["listener"] == "in" and line["service"] == "svc", line
        assert CLIENT.match(line["client"]), line
        assert line["authority"] == ferry.target and line["method"] == "POST" and line["path"] == "/ferry.test.Echo/Unary", line
        assert line["status"] == "OK" and line["grpc_status"] == 0 and line["http_status"] == 200, line
        assert line["attempts"] == 1 and line["endpoints"] == [endpoint] and line["endpoint"] == endpoint, line
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0, line
        assert 4_000 <= line["deadline_ms"] <= 5_100, line     # grpcio's 5 s timeout (it rounds up)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["time"]), line
    # Bytes each way: the gRPC message with its 5-byte prefix.
    assert [l["request_bytes"] for l in lines[:10]] == [10] * 5 + [105] * 5
    assert [l["response_bytes"] for l in lines[:10]] == [10] * 5 + [105] * 5
    # Request ids: the caller's kept; one generated (a version 4 UUID) for the others, and the
    # upstream saw the same id as the log.
    assert [l["request_id"] for l in lines[:5]] == [f"client-{i}" for i in range(5)]
    generated = [l["request_id"] for l in lines[5:10]]
    assert all(UUID4.match(i) for i in generated) and len(set(generated)) == 5, generated
    seen = [md.get("x-request-id") for md in state.unary_metadata]
    assert seen == [l["request_id"] for l in lines[:10]], seen
    failed = lines[10]
    assert failed["status"] == "UNAVAILABLE" and failed["grpc_status"] == 14 and failed["attempts"] == 2, failed
    assert failed["endpoints"] == [endpoint, endpoint], failed
    assert "error" not in failed, "the upstream's status, not one Ferry made"


def test_logfmt_on_stdout_and_the_proxy_s_own_errors(grpc_upstream, ferry_factory):
    port, state = grpc_upstream
    listen = free_port()
    ferry = ferry_factory(config=config(listen, port, "{format: text, request_id: forward}", "    max_message_size: 1KiB\n"),
                          ports={"in": listen})
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        unary = channel.unary_unary("/ferry.test.Echo/Unary")
        assert unary(b"a b", timeout=5) == b"a b"
        try:
            unary(b"x" * 2000, timeout=5)
            assert False, "over max_message_size"
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    def records():
        return [parse_logfmt(line) for line in ferry.logs().splitlines() if line.startswith("time=")]
    assert wait_until(lambda: len(records()) >= 2, 5), ferry.logs()
    ok, refused = records()[:2]
    assert ok["status"] == "OK" and ok["endpoint"] == f"127.0.0.1:{port}" and CLIENT.match(ok["client"]), ok
    assert ok["request_id"] == "-" and "x-request-id" not in state.unary_metadata[0], "forward: no id is made up"
    assert ok["request_bytes"] == "8" and ok["response_bytes"] == "8" and "error" not in ok, ok
    assert refused["status"] == "RESOURCE_EXHAUSTED" and refused["grpc_status"] == "8", refused
    assert refused["error"].startswith("ferry: request ") and "1024" in refused["error"], refused


def test_a_file_is_reopened_on_sighup_for_log_rotation(grpc_upstream, ferry_factory, tmp_path):
    port, _ = grpc_upstream
    listen = free_port()
    path = tmp_path / "access.log"
    ferry = ferry_factory(config=config(listen, port, f"{{path: {path}, format: json}}"), ports={"in": listen})
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        unary = channel.unary_unary("/ferry.test.Echo/Unary")
        for _ in range(3):
            unary(b"before", timeout=5)
        json_lines(path, 3)
        os.rename(path, tmp_path / "access.log.1")        # what logrotate does, then it signals
        ferry.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: ferry.count_in_logs("configuration reloaded") >= 1, 5)
        for _ in range(4):
            unary(b"after", timeout=5)
    assert len(json_lines(path, 4)) == 4
    assert len(json_lines(tmp_path / "access.log.1", 3)) == 3, "the rotated file kept its lines, none was lost"


def test_a_destination_that_cannot_be_opened_is_refused_by_name(grpc_upstream, ferry_factory, tmp_path):
    port, _ = grpc_upstream
    listen = free_port()
    bad = tmp_path / "missing-dir" / "access.log"
    path = tmp_path / "ferry.yaml"
    path.write_text(config(listen, port, f"{{path: {bad}}}"))
    run = subprocess.run([ferry_binary(), "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert f"access_log.path: cannot open {bad} for appending: No such file or directory" in run.stderr, run.stderr

    good = tmp_path / "access.log"
    ferry = ferry_factory(config=config(listen, port, f"{{path: {good}, format: json}}"), ports={"in": listen})
    ferry.write_config(config(listen, port, f"{{path: {bad}}}"))
    ferry.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ferry.count_in_logs("configuration could not be applied") >= 1, 5), ferry.logs()
    with grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS) as channel:
        channel.unary_unary("/ferry.test.Echo/Unary")(b"still", timeout=5)
    assert len(json_lines(good, 1)) == 1, "the running access log goes on"
