"""The ferry binary's commands: check, run with a broken config, demo, and its command line itself."""
import subprocess

import pytest

from conftest import ferry_binary

BAD = """listeners:
  - name: outbound
    address: 127.0.0.1:4140
    service: greeter
services:
  greeter:
    endpoints: [127.0.0.1:50051]
    conect_timeout: 1s
"""


def test_check_accepts_a_valid_config_and_prints_what_it_sets_up(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(BAD.replace("conect_timeout", "connect_timeout"))
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"{path}: OK" in out.stdout
    assert "listener outbound on 127.0.0.1:4140; routes, most specific first:\n  default -> greeter\n" in out.stdout
    assert "service greeter: 127.0.0.1:50051" in out.stdout


ROUTED = """listeners:
  - name: outbound
    address: 127.0.0.1:4140
    service: greeter
    routes:
      - {match: {path_prefix: /api/}, service: web}
      - {match: {authority: "*.svc.cluster.local", method: "helloworld.Greeter/*"}, service: greeter}
services:
  greeter:
    endpoints: [127.0.0.1:50051]
    timeout: 2s
    methods:
      - {match: helloworld.Greeter/SayHello, deadline_offset: 5ms}
      - {match: helloworld.Greeter/*, timeout: 300ms}
  web:
    discovery: {dns: {name: web.test, port: 80, resolver: "127.0.0.1:5353"}}
"""


def test_check_prints_the_resolved_routing_table_and_method_policies(tmp_path):
    path = tmp_path / "routed.yaml"
    path.write_text(ROUTED)
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # Routes in the order they are tried (most specific first), whatever order they were written in.
    assert ("  authority *.svc.cluster.local, method helloworld.Greeter/* -> greeter\n"
            "  path_prefix /api/ -> web\n"
            "  default -> greeter\n") in out.stdout
    # The exact method inherits the timeout of helloworld.Greeter/*, which overrides the service's.
    assert ("  method helloworld.Greeter/SayHello (from services.greeter.methods[0]):\n"
            "    timeout 300ms  (services.greeter.methods[1])\n"
            "    deadline_offset 5ms  (services.greeter.methods[0])\n"
            "    max_message_size 16MiB  (default)\n") in out.stdout, out.stdout
    # Every effective setting after inheritance, each with where it was written.
    section = out.stdout.split("  method helloworld.Greeter/SayHello (from services.greeter.methods[0]):\n")[1]
    settings = [line.split()[0] for line in section.splitlines()[:10]]
    assert settings == ["timeout", "deadline_offset", "max_message_size", "stream_idle_timeout", "deadline_header",
                        "failure_statuses", "retry", "hedge", "rate_limit", "fault"], section
    assert "    retry on [UNAVAILABLE], 3 attempts, per_try_timeout none, backoff 25ms..250ms, buffer 64KiB, hold_response off  (default)" in section
    assert "  every method no entry matches (services.greeter):\n    timeout 2s  (services.greeter)\n" in out.stdout
    assert "  pool: connect_timeout 1s, idle_timeout 60s, max_connections_per_endpoint 8, max_pending_calls 1024" in out.stdout
    assert "  balancer: p2c-peak-ewma (initial_rtt 30ms, decay 10s)" in out.stdout
    assert "service web: DNS A+AAAA web.test port 80 via 127.0.0.1:5353" in out.stdout


def test_check_rejects_ambiguous_routes(tmp_path):
    path = tmp_path / "tie.yaml"
    path.write_text(ROUTED.replace("{match: {path_prefix: /api/}, service: web}",
                                   "{match: {method: \"helloworld.Greeter/*\", authority: \"*.SVC.cluster.local\"}, service: web}"))
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith(f"{path}:7:9: listeners[0].routes[1]: matches exactly what listeners[0].routes[0] matches"), out.stderr


def test_check_names_file_line_column_and_key_of_a_typo(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith(f'{path}:8:5: services.greeter.conect_timeout: unknown key "conect_timeout" '
                                 '(did you mean "connect_timeout"?)'), out.stderr


def test_check_reports_every_error_in_the_file_not_only_the_first(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("""admin: {adress: 127.0.0.1:9990}
listeners:
  - {name: a, address: "127.0.0.1:4140", service: greeter}
  - {name: b, address: "http://127.0.0.1:4141", service: greeter}
  - {name: c, address: "127.0.0.1:4142", service: nowhere}
services:
  greeter:
    endpoints: [127.0.0.1:50051]
    conect_timeout: 1s
  other:
    endpoints: ["300.1.1.1:80"]
""")
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert [line.split(":")[1] for line in lines[:-1]] == ["1", "4", "5", "9", "11"], out.stderr
    assert 'admin.adress: unknown key "adress"' in lines[0]
    assert "listeners[1].address" in lines[1] and "http://" in lines[1], lines[1]
    assert 'no service named "nowhere"' in lines[2]
    assert 'unknown key "conect_timeout"' in lines[3]
    assert "300.1.1.1" in lines[4]
    assert lines[-1] == f"{path}: 5 errors"


def test_run_refuses_a_broken_config_with_exit_code_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD.replace("conect_timeout", "connect_timeout").replace("127.0.0.1:50051", "127.0.0.1:99999"))
    out = subprocess.run([ferry_binary(), "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "ferry: invalid configuration:" in out.stderr
    assert f"{path}:7:17: services.greeter.endpoints[0]: port must be a number from 1 to 65535" in out.stderr


def test_check_reports_a_missing_file(tmp_path):
    out = subprocess.run([ferry_binary(), "check", str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "cannot read the file" in out.stderr


def test_demo_runs_and_reports_every_upstream_and_status():
    out = subprocess.run([ferry_binary(), "demo", "--calls", "600", "--concurrency", "8"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("echo-1", "echo-2", "echo-3"):
        assert f"  {name}" in out.stdout
    assert "OK" in out.stdout and "UNAVAILABLE" in out.stdout
    # echo-3 answers every 50th call with UNAVAILABLE; the default retry policy sends those again.
    retries = int(out.stdout.split("sent again to another upstream): ")[1].split()[0])
    assert retries >= 1, out.stdout
    assert "Echoed bodies that differed from what was sent: 0" in out.stdout
    assert "Latency (us): p50" in out.stdout
    # The resilience phases, each with what happened in numbers (the demo exits 1 if a phase
    # saw what it should not: a failed call, no ejection, no restore, no hedge).
    import re
    phase = {n: out.stdout.split(f"Phase {n} - ")[1].split("\nPhase ")[0] for n in (1, 2, 3, 4)}
    slow = re.search(r"echo-2 got (\d+) of 2000 calls", phase[1])
    assert slow and int(slow.group(1)) < 500, phase[1]          # an even share would be 667
    assert "statuses: 2000 OK" in phase[1], phase[1]
    assert "1500 calls: 1500 OK" in phase[2] and "echo-3 was ejected (" in phase[2], phase[2]
    assert re.search(r"echo-3 recovered: \d+ ms later it was answering calls again", phase[2]), phase[2]
    tight = re.search(r"(\d+) of 40 calls ended DEADLINE_EXCEEDED", phase[3])
    assert tight and int(tight.group(1)) >= 1, phase[3]
    told = re.search(r"the upstream was told grpc-timeout: (\d+)([nums])", phase[3])
    assert told, phase[3]
    scale = {"n": 1e-6, "u": 1e-3, "m": 1, "s": 1000}[told.group(2)]
    assert 0 < int(told.group(1)) * scale <= 90, phase[3]         # 100 ms less the 10 ms offset, less time in the proxy
    hedges = re.search(r"; (\d+) hedges? sent", phase[4])
    assert hedges and int(hedges.group(1)) >= 1, phase[4]


def ferry(*args):
    return subprocess.run([ferry_binary(), *args], capture_output=True, text=True, timeout=30)


def test_help_lists_every_command_and_each_command_its_options():
    out = ferry("--help")
    assert out.returncode == 0
    for command in ("run", "check", "demo", "record", "fixture show"):
        assert f"\n  {command} " in out.stdout, out.stdout
    out = ferry("run", "--help")
    assert out.returncode == 0
    assert "USAGE: ferry run --config <path> [options]" in out.stdout
    assert "--log-level <level>" in out.stdout and "(default: the config's log.level, else info)" in out.stdout


def test_command_line_mistakes_name_the_mistake_and_exit_64(tmp_path):
    cases = [
        (("run",), "Error: missing --config"),
        (("run", "-c"), "Error: missing value for '-c'"),
        (("run", "--config", "a.yaml", "--verbose"), "Error: unknown option '--verbose'"),
        (("check",), "Error: missing <file>"),
        (("check", "a.yaml", "b.yaml"), "Error: unexpected argument 'b.yaml'"),
        (("demo", "--calls", "many"), "Error: --calls takes a whole number, got 'many'"),
        (("demo", "--calls", "0"), "Error: calls and concurrency must be at least 1"),
        (("demo", "--serve=yes"), "Error: --serve takes no value"),
        (("record", "--listen", "x", "--upstream", "y", "--out", str(tmp_path), "--name", "a", "--name", "b"),
         "Error: --name given twice"),
        (("record", "--listen", "nowhere", "--upstream", "127.0.0.1:1", "--out", str(tmp_path)),
         "Error: --listen and --upstream take host:port"),
        (("launch",), "Error: unknown command 'launch'"),
    ]
    for args, message in cases:
        out = ferry(*args)
        assert out.returncode == 64, (args, out.returncode, out.stderr)
        assert out.stderr.startswith(message), (args, out.stderr)
    assert "Usage: ferry run --config <path> [options]" in ferry("run").stderr


def test_options_take_equals_and_short_forms(tmp_path):
    # --config=PATH and -c PATH both reach the loader: the broken file is reported, so the option was read.
    broken = tmp_path / "broken.yaml"
    broken.write_text("listeners: [\n")
    for args in (["run", f"--config={broken}"], ["run", "-c", str(broken), "--log-level=error"]):
        out = ferry(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert f"ferry: invalid configuration: {broken}:" in out.stderr


TRAFFIC = """listeners:
  - name: in
    address: 127.0.0.1:4140
    routes:
      - match: {method: "shop.Cart/*", headers: [{name: x-canary, exact: "1"}]}
        service: v2
      - match: {method: "shop.Cart/*"}
        split: [{service: v1, weight: 90}, {service: v2, weight: 10}]
        fault: {abort: {status: UNAVAILABLE, percent: 1}}
services:
  v1:
    endpoints: ["127.0.0.1:50051"]
    rate_limit: {rate: 100/s, burst: 20}
    health_check: {interval: 2s, timeout: 500ms, service: shop.Cart}
  v2:
    endpoints: ["127.0.0.1:50052"]
"""


def test_check_prints_splits_header_routes_faults_rate_limits_and_health_checks(tmp_path):
    path = tmp_path / "traffic.yaml"
    path.write_text(TRAFFIC)
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert '  method shop.Cart/*, header x-canary = "1" -> v2' in out.stdout, out.stdout
    assert ("  method shop.Cart/* -> split v1 90 (90%), v2 10 (10%); fault: abort UNAVAILABLE (HTTP 503) 1%"
            in out.stdout), out.stdout
    assert 'health checks: grpc.health.v1.Health/Check for "shop.Cart" every 2s, timeout 500ms' in out.stdout, out.stdout
    assert "rate_limit 100/s (burst 20)" in out.stdout, out.stdout


@pytest.mark.parametrize("edit, where", [
    (lambda t: t.replace("weight: 90}, {service: v2, weight: 10}", "weight: 0}, {service: v2, weight: 0}"),
     ":8:16: listeners[0].routes[1].split: the weights of a split add up to 0"),
    (lambda t: t.replace("{service: v2, weight: 10}", "{service: v3, weight: 10}"),
     ':8:54: listeners[0].routes[1].split[1].service: no service named "v3"'),
    (lambda t: t.replace("rate: 100/s", "rate: 0/s"), ":13:24: services.v1.rate_limit.rate: a rate of 0 would refuse every call"),
    (lambda t: t.replace("timeout: 500ms", "timeout: 5s"), ":14:43: services.v1.health_check.timeout: the timeout (5s) must not be longer"),
])
def test_check_rejects_bad_traffic_settings_at_their_line(tmp_path, edit, where):
    path = tmp_path / "traffic.yaml"
    path.write_text(edit(TRAFFIC))
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith(f"{path}{where}"), out.stderr


def test_check_rejects_max_pending_calls_0_which_would_leave_endpoints_unreachable(tmp_path):
    path = tmp_path / "pending.yaml"
    path.write_text(BAD.replace("conect_timeout: 1s", "max_pending_calls: 0"))
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith(f"{path}:8:24: services.greeter.max_pending_calls: 0 would leave every endpoint unreachable"), out.stderr
    path.write_text(BAD.replace("conect_timeout: 1s", "max_pending_calls: 1"))
    assert subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30).returncode == 0


def test_check_reads_endpoints_files_and_reports_every_problem_in_them(tmp_path):
    (tmp_path / "bad.yaml").write_text('endpoints: ["1.2.3.4:80", "999.1.1.1:5"]\n')
    path = tmp_path / "files.yaml"
    path.write_text("""listeners:
  - {name: a, address: "127.0.0.1:8440", service: s}
services:
  s: {discovery: {file: {path: missing.yaml}}}
  t: {discovery: {file: {path: bad.yaml}}}
""")
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[0] == f'{tmp_path}/missing.yaml: cannot read the file: No such file or directory (the endpoints file of service "s")', lines
    assert lines[1] == (f'{tmp_path}/bad.yaml:1:27: endpoints[1]: "999.1.1.1" is not an IPv4 address (four numbers from 0 to 255, '
                        'such as 10.0.0.1) (the endpoints file of service "t")'), lines


@pytest.mark.parametrize("address, says", [
    ("http://127.0.0.1:8410", 'an address is host:port, with no scheme: write "127.0.0.1:8410"'),
    ("300.1.1.1:80", '"300.1.1.1" is not an IPv4 address'),
])
def test_check_says_what_is_wrong_with_an_address(tmp_path, address, says):
    path = tmp_path / "address.yaml"
    path.write_text(BAD.replace("conect_timeout: 1s", "connect_timeout: 1s").replace("127.0.0.1:50051", address))
    out = subprocess.run([ferry_binary(), "check", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and f"services.greeter.endpoints[0]: {says}" in out.stderr, out.stderr
    assert "IPv6" not in out.stderr, "no advice about brackets for an address that is not IPv6"


def test_demo_serve_prints_its_banner_at_once_into_a_pipe_and_its_h2load_command_works():
    import json
    import shlex
    import threading
    import signal
    import time
    import urllib.request
    from conftest import free_port
    admin = free_port()
    proc = subprocess.Popen([ferry_binary(), "demo", "--calls", "200", "--serve", "--admin-port", str(admin)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(l.rstrip("\n") for l in proc.stdout), daemon=True)
        reader.start()
        # stdout is a pipe, not a terminal: the banner must still arrive while the demo runs.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(l.startswith("  curl ") for l in list(lines)):
            time.sleep(0.1)
        assert any(l.startswith("Ferry demo") for l in lines), lines
        assert any(f"admin on 127.0.0.1:{admin}" in l for l in lines), lines
        command = next(l.strip() for l in lines if l.strip().startswith("h2load "))
        out = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
        assert "1000 succeeded, 0 failed" in out.stdout and "1000 2xx" in out.stdout, out.stdout + out.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/endpoints", timeout=5) as r:
            assert len(json.loads(r.read())["demo-echo"]) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
