"""Hostile clients that try to take more than their share: streams that never finish, responses
never read, requests that are expensive to parse, connections that never start or go quiet,
frames on closed streams. Each asserts what the hostile client gets (the HTTP/2 error, the
number of frames before it) and that a well-behaved client beside it completes every call;
timings are left to bench/hostile.py."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import grpc
import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame

from conftest import CHANNEL_OPTIONS, assert_still_serving, free_port, method, wait_for_port
from netutil import wait_until
from raw_h2 import PREFACE, RawClient, parse_frames, empty_field_requests, grpc_message, hpack_bomb_requests, window_overrun_requests

SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
ENHANCE_YOUR_CALM = 0xB
PROTOCOL_ERROR = 0x1


class SideClient:
    """A well-behaved grpcio client making calls one after another until stopped."""

    def __init__(self, target, timeout=5.0):
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.call = method(self.channel, "unary_unary", "Unary")
        self.timeout = timeout
        self.ok = 0
        self.failures = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopping.is_set():
            try:
                assert self.call(b"side", timeout=self.timeout) == b"side"
                self.ok += 1
            except grpc.RpcError as e:
                self.failures.append((e.code(), e.details()))
            time.sleep(0.005)

    def __enter__(self):
        self.call(b"warm", timeout=self.timeout)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        self.channel.close()

    def calls_at_least(self, n, timeout=30):
        start = self.ok
        return wait_until(lambda: self.ok - start >= n, timeout=timeout)


@pytest.fixture
def narrow_upstream():
    """A grpcio upstream advertising 100 streams per connection, as the issue's upstream did:
    Ferry's pool for it holds 8 connections x 100 streams per event loop."""
    from echo_server import make_server
    server, port, state = make_server(0, options=[("grpc.max_concurrent_streams", 100)])
    yield port
    server.stop(grace=None)


def test_a_connection_opening_1024_streams_that_never_finish_does_not_starve_others(narrow_upstream, ferry_factory):
    ferry = ferry_factory([narrow_upstream], event_loops=1)
    hog = RawClient(ferry.port)
    hog.handshake()
    # 1,024 requests whose bodies never come: each would hold an upstream stream for good.
    for stream_id in range(1, 2 * 1024, 2):
        try:
            hog.send(hog.request_headers(stream_id, end_stream=False))
        except OSError:
            break
    frames = hog.frames(timeout=2)
    with SideClient(ferry.target) as side:
        assert side.calls_at_least(200), f"side client made {side.ok} calls; failures {side.failures[:3]}"
    streams = sum(float(line.split()[-1]) for line in ferry.admin("/metrics")[1].splitlines()
                  if line.startswith("ferry_downstream_streams{"))
    hog.close()
    assert side.failures == []
    # Ferry advertises 100 streams; the hog got no more, and the rest were refused or cut off.
    assert streams <= 100 + 1, f"{streams} downstream streams open"
    assert any(isinstance(f, RstStreamFrame) or isinstance(f, GoAwayFrame) for f in frames)


@pytest.fixture
def nghttpd_big():
    """nghttpd (plain HTTP/2) serving a 4 MiB file and a small one, 1,000 streams per connection."""
    docroot = tempfile.mkdtemp(prefix="ferry-nghttpd-")
    with open(os.path.join(docroot, "big"), "wb") as f:
        f.write(os.urandom(1 << 20) * 4)
    with open(os.path.join(docroot, "small"), "wb") as f:
        f.write(b"small")
    port = free_port()
    proc = subprocess.Popen(["nghttpd", "--no-tls", "-m", "1000", "-d", docroot, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield port
    proc.terminate()
    proc.wait()


def get_headers(client, stream_id, path):
    block = client.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "test")])
    frame = HeadersFrame(stream_id, block)
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    return frame


@pytest.mark.skipif(shutil.which("nghttpd") is None, reason="nghttp2-server not installed")
@pytest.mark.parametrize("stalled", [8, 64, 800])
def test_streams_nobody_reads_do_not_stall_other_clients_on_the_same_upstream_connection(stalled, nghttpd_big,
                                                                                       ferry_factory):
    ferry = ferry_factory([nghttpd_big], event_loops=1)   # one loop: every client shares its upstream connections
    readers = []
    for c in range((stalled + 99) // 100):
        client = RawClient(ferry.port)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.handshake()
        for i in range(min(100, stalled - 100 * c)):
            client.send(get_headers(client, 2 * i + 1, "/big"))
        readers.append(client)                         # ... and never read
    time.sleep(1)                                      # the upstream sends until the windows are full
    side = RawClient(ferry.port)
    side.handshake()
    done = 0
    for i in range(20):
        stream_id = 2 * i + 1
        side.send(get_headers(side, stream_id, "/small"))
        frames = side.stream_ended(stream_id, timeout=5)
        if any(isinstance(f, DataFrame) and f.stream_id == stream_id and f.data == b"small" for f in frames):
            done += 1
    side.close()
    rss = ferry.rss_kib()
    for client in readers:
        client.close(abrupt=True)
    print(f"{stalled} stalled streams: Ferry RSS {rss} KiB")
    assert done == 20, f"only {done} of 20 small GETs completed beside {stalled} stalled streams"
    # Bounded by the stream windows: 256 KiB per stalled stream, plus the process itself.
    assert rss < 40 * 1024 + stalled * 300, f"RSS {rss} KiB with {stalled} stalled streams"


@pytest.mark.parametrize("attack", [hpack_bomb_requests, empty_field_requests, window_overrun_requests])
def test_a_connection_that_keeps_causing_stream_errors_is_ended(attack, grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port], event_loops=1)     # the attacker and the side client share the loop
    with SideClient(ferry.target) as side:
        attacker = RawClient(ferry.port, timeout=10)
        attacker.handshake()
        attacker.send(WindowUpdateFrame(0, 1 << 30))
        sent = 0
        try:
            for frame in attack(attacker, 2000):
                attacker.send(frame)
                if isinstance(frame, HeadersFrame):
                    sent += 1
        except OSError:
            pass                                    # Ferry closed the connection: what we want
        frames = attacker.frames(timeout=5)
        attacker.close()
        assert side.calls_at_least(20), f"side client made {side.ok} calls; failures {side.failures[:3]}"
    goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert goaways and goaways[-1].error_code == ENHANCE_YOUR_CALM, f"no GOAWAY ENHANCE_YOUR_CALM after {sent} requests"
    errors = len({f.stream_id for f in frames if isinstance(f, RstStreamFrame) or
                  (isinstance(f, HeadersFrame) and f.stream_id % 2 == 1)})
    # The budget is 100 stream errors at once, then 10 a second: the cut-off comes near 100,
    # not after the 2,000 requests.
    assert goaways[-1].last_stream_id < 2 * 400, f"cut off only at stream {goaways[-1].last_stream_id}"
    assert errors <= 400, f"{errors} stream errors answered before the GOAWAY"
    assert side.failures == []
    assert ferry.alive()


def goaways(data):
    """The GOAWAY frames in bytes a server sent."""
    return [f for f in parse_frames(data)[0] if isinstance(f, GoAwayFrame)]


def test_connections_that_never_finish_the_handshake_or_stay_silent_are_closed(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    listen = free_port()
    admin = free_port()
    config = f"""admin: {{address: '127.0.0.1:{admin}'}}
listeners:
  - {{name: edge, address: '127.0.0.1:{listen}', service: echo, handshake_timeout: 1s, idle_timeout: 2s}}
services:
  echo: {{endpoints: ['127.0.0.1:{port}']}}
"""
    ferry = ferry_factory(config=config, ports={"edge": listen}, admin_port=admin)
    half = []
    for _ in range(1000):
        s = socket.create_connection(("127.0.0.1", listen))
        s.sendall(PREFACE[:10])                              # half a preface, then nothing
        half.append(s)
    silent = []
    for _ in range(1000):
        c = RawClient(listen)
        c.handshake()                                        # a complete handshake, then nothing
        silent.append(c)
    started = time.monotonic()

    def closed_by_ferry(sock):
        sock.settimeout(10)
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except (socket.timeout, ConnectionResetError):
            return None
    half_answers = [closed_by_ferry(s) for s in half]
    silent_answers = [closed_by_ferry(c.sock) for c in silent]
    elapsed = time.monotonic() - started
    assert all(a is not None for a in half_answers), "a half-preface connection was left open"
    assert all(a is not None for a in silent_answers), "a silent connection was left open"
    # Both were told why before the close: GOAWAY SETTINGS_TIMEOUT (no handshake), and the
    # idle ones the graceful GOAWAY with NO_ERROR.
    assert all([g.error_code for g in goaways(a)][-1:] == [SETTINGS_TIMEOUT] for a in half_answers)
    assert all(goaways(a) and all(g.error_code == 0 for g in goaways(a)) for a in silent_answers)
    assert elapsed < 10
    _, text = ferry.admin("/metrics")
    assert 'ferry_downstream_connections_closed_total{listener="edge",reason="handshake_timeout"} 1000' in text
    assert 'ferry_downstream_connections_closed_total{listener="edge",reason="idle_timeout"} 1000' in text
    for s in half + [c.sock for c in silent]:
        s.close()
    assert_still_serving(f"127.0.0.1:{listen}")


def test_connections_over_the_listener_limit_are_refused_with_goaway(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    listen = free_port()
    admin = free_port()
    config = f"""admin: {{address: '127.0.0.1:{admin}'}}
runtime: {{event_loops: 2}}
listeners:
  - {{name: edge, address: '127.0.0.1:{listen}', service: echo, max_connections: 50}}
services:
  echo: {{endpoints: ['127.0.0.1:{port}']}}
"""
    ferry = ferry_factory(config=config, ports={"edge": listen}, admin_port=admin)
    held = []
    for _ in range(50):
        # A place may still be held for a moment by the connection that waited for the port to
        # open (its close not yet processed on a busy machine): such a refusal is retried.
        for attempt in range(20):
            c = RawClient(listen)
            c.handshake()
            # An admitted connection acknowledges our SETTINGS; a refused one sends GOAWAY instead.
            first = c.frames(timeout=10, until=lambda f: isinstance(f, GoAwayFrame)
                             or (isinstance(f, SettingsFrame) and "ACK" in f.flags))
            if not any(isinstance(f, GoAwayFrame) for f in first):
                break
            c.close()
            time.sleep(0.2)
        held.append(c)
    # Every one of the 50 is served (a call on each), across both event loops.
    for i, c in enumerate(held):
        c.unary_call(1)
        assert any(getattr(f, "stream_id", 0) == 1 and "END_STREAM" in f.flags for f in c.stream_ended(1)), i
    refused = []
    for _ in range(10):
        c = RawClient(listen)
        c.handshake()
        refused.append(c.goaway(timeout=5))
        c.close()
    assert all(g is not None and g.error_code == ENHANCE_YOUR_CALM and b"connection limit" in g.additional_data
               for g in refused), refused
    _, text = ferry.admin("/metrics")
    assert 'ferry_downstream_connections_closed_total{listener="edge",reason="connection_limit"} 10' in text
    for c in held[:5]:
        c.close()
    # Places given back: new connections are served again.
    assert wait_until(lambda: 'ferry_downstream_connections{listener="edge"} 45' in ferry.admin("/metrics")[1], timeout=5)
    assert_still_serving(f"127.0.0.1:{listen}")
    for c in held[5:]:
        c.close()


# h2spec 2.6, section 5.1 "closed": the four cases Ferry used to leave unanswered.

def closed_by_reset(client):
    """Stream 1 opened, then reset by the client: frames on it after that are a stream error."""
    client.send(client.request_headers(1, end_stream=False), RstStreamFrame(1, error_code=0x8))


def closed_normally(client):
    """Stream 1: a whole request and its response (both sides ended): anything more is a connection error."""
    client.unary_call(1)
    client.stream_ended(1)


@pytest.mark.parametrize("case", ["5.1/8 DATA after RST_STREAM", "5.1/9 HEADERS after RST_STREAM",
                                  "5.1/11 DATA on a closed stream", "5.1/12 HEADERS on a closed stream"])
def test_frames_on_closed_streams_get_stream_closed(case, grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    client = RawClient(ferry.port)
    client.handshake()
    after_reset = "RST_STREAM" in case
    (closed_by_reset if after_reset else closed_normally)(client)
    client.frames(timeout=0.3)
    if "DATA" in case:
        frame = DataFrame(1, b"test")
        frame.flags.add("END_STREAM")
    else:
        frame = client.request_headers(1)
    client.send(frame)
    frames = client.frames(timeout=3, until=lambda f: isinstance(f, (RstStreamFrame, GoAwayFrame)))
    client.close()
    answers = [f for f in frames if isinstance(f, (RstStreamFrame, GoAwayFrame))]
    assert answers, f"{case}: no answer"
    answer = answers[-1]
    assert answer.error_code == STREAM_CLOSED, f"{case}: {answer}"
    if after_reset:
        assert isinstance(answer, RstStreamFrame) and answer.stream_id == 1   # a stream error
    else:
        assert isinstance(answer, GoAwayFrame)                                # a connection error
    assert_still_serving(ferry.target)


def test_frames_in_flight_on_a_stream_ferry_reset_are_ignored(grpc_upstream, ferry_factory):
    """RFC 9113 5.1: after sending RST_STREAM an endpoint must ignore frames already in flight."""
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    client = RawClient(ferry.port)
    client.handshake()
    # A malformed grpc-timeout is answered by Ferry itself at once (INTERNAL), and the stream
    # ended; the request body the client still sends afterwards must be ignored, not an error.
    client.send(client.request_headers(1, end_stream=False, extra=[("grpc-timeout", "bogus")]))
    client.frames(timeout=0.3)
    client.send(DataFrame(1, grpc_message(b"late")))
    frames = client.frames(timeout=1)
    client.close()
    assert not any(isinstance(f, GoAwayFrame) for f in frames), frames
