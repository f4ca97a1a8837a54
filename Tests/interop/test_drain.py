"""SIGTERM drains: calls in flight finish, new connections are refused, exit code 0."""
import signal
import socket
import struct
import threading
import time

import grpc

from conftest import CHANNEL_OPTIONS, method
from echo_server import make_server

CALLS = 200


def test_sigterm_lets_streaming_calls_in_flight_finish(ferry_factory):
    server, port, _ = make_server(0, workers=CALLS + 16)    # every stream served at once
    ferry = ferry_factory([port])
    # Ferry lets a client connection have 100 streams at once: four connections carry the 200
    # (a local subchannel pool each, so grpcio does not share one connection between them).
    channels = [grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS + [("grpc.use_local_subchannel_pool", 1)])
                for _ in range(4)]
    results = []
    lock = threading.Lock()
    started = threading.Barrier(CALLS + 1)

    def run(channel):
        # 20 messages, 50 ms apart: about a second of streaming per call.
        responses = method(channel, "unary_stream", "ServerStream")(struct.pack(">III", 20, 64, 50), timeout=20)
        next(responses)
        started.wait()
        rest = list(responses)
        with lock:
            results.append(1 + len(rest))

    threads = [threading.Thread(target=run, args=(channels[i % 4],)) for i in range(CALLS)]
    for t in threads:
        t.start()
    started.wait(30)
    assert ferry.admin("/ready") == (200, "ready\n")
    ferry.exit_expected = True
    ferry.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    ready_while_draining = ferry.admin("/ready")
    refused = False
    try:
        socket.create_connection(("127.0.0.1", ferry.port), timeout=1).close()
    except OSError:
        refused = True
    for t in threads:
        t.join(30)
    for channel in channels:
        channel.close()
    server.stop(grace=None)
    assert results == [20] * CALLS, f"calls cut short during the drain: {sorted(results)[:10]}"
    assert refused, "the listener still accepted connections while draining"
    assert ready_while_draining == (503, "shutting down\n"), ready_while_draining
    assert ferry.proc.wait(15) == 0, ferry.logs()
