"""The process log for pipelines: `--log-format json` writes one JSON object per line with a
millisecond UTC timestamp, the level, the message and the fields; text is logfmt (values with
spaces quoted, so a logfmt parser reads them back); a bad --log-level or --log-format is an error."""
import json
import re
import subprocess

from conftest import Ferry, ferry_binary, free_port, parse_logfmt

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def config(port, upstream):
    return f"""listeners:
  - {{name: in, address: "127.0.0.1:{port}", service: app}}
services:
  app: {{endpoints: ["127.0.0.1:{upstream}"]}}
"""


def test_json_lines_parse_and_carry_their_fields(tmp_path):
    port, dead = free_port(), free_port()
    path = tmp_path / "ferry.yaml"
    path.write_text(config(port, dead))
    proc = subprocess.Popen([ferry_binary(), "run", "--config", str(path), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import grpc
        from conftest import CHANNEL_OPTIONS, wait_for_port
        wait_for_port(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
            try:
                channel.unary_unary("/p.S/M")(b"", timeout=2)       # the endpoint is down: a connect failure is logged
            except grpc.RpcError:
                pass
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    records = [json.loads(line) for line in out.splitlines()]      # every line is one JSON object
    assert records, out
    for r in records:
        assert TS.match(r["ts"]) and r["level"] in ("info", "notice", "warning", "error", "debug") and r["msg"], r
    started = next(r for r in records if r["msg"] == "ferry started")
    assert started["config"] == str(path) and started["version"], started
    assert any(r["msg"] == "draining" for r in records), records


def test_text_is_logfmt_with_quoted_values(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    records = ferry.log_records()
    assert records and all(TS.match(r["ts"]) for r in records), ferry.logs()
    started = next(r for r in records if r["msg"] == "ferry started")
    assert started["level"] == "info" and started["config"] == ferry.config_path
    # A value with spaces comes back whole.
    line = 'ts=2026-12-02T00:00:00.000Z level=info msg="a b \\"c\\"" k=v empty=""'
    assert parse_logfmt(line) == {"ts": "2026-12-02T00:00:00.000Z", "level": "info", "msg": 'a b "c"', "k": "v", "empty": ""}
    assert any('msg="ferry started"' in l for l in ferry.logs().splitlines()), ferry.logs()


def test_a_bad_log_level_or_format_is_an_error(tmp_path):
    path = tmp_path / "ferry.yaml"
    path.write_text(config(free_port(), free_port()))
    for flag, value, says in (("--log-level", "verbose", "--log-level takes one of trace, debug, info, notice, warning, error, critical, not 'verbose'"),
                              ("--log-format", "xml", "--log-format takes text or json, not 'xml'")):
        out = subprocess.run([ferry_binary(), "run", "--config", str(path), flag, value], capture_output=True, text=True, timeout=10)
        assert out.returncode == 64 and says in out.stderr, (out.returncode, out.stderr)


def run_briefly(path, port, *flags):
    """Starts ferry with `flags`, makes one call through it, stops it: its output."""
    import grpc
    from conftest import CHANNEL_OPTIONS, wait_for_port
    proc = subprocess.Popen([ferry_binary(), "run", "--config", str(path), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
            assert channel.unary_unary("/ferry.test.Echo/Unary")(b"x", timeout=5) == b"x"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    return out


def test_the_config_sets_level_and_format_and_a_flag_overrides_it(grpc_upstream, tmp_path):
    upstream, _ = grpc_upstream
    port = free_port()
    path = tmp_path / "ferry.yaml"
    path.write_text("log: {format: json, level: debug}\n" + config(port, upstream))
    records = [json.loads(line) for line in run_briefly(path, port).splitlines()]
    assert any(r["msg"] == "ferry started" for r in records), records
    assert any(r["level"] == "debug" and r["msg"] == "upstream connected" for r in records), \
        "log.level: debug lets debug lines through"
    text = run_briefly(path, port, "--log-format", "text", "--log-level", "info").splitlines()
    assert text and all(line.startswith("ts=") for line in text), text
    assert not any("level=debug" in line for line in text), text
