"""SIGTERM drains: calls in flight finish, new connections are refused, exit code 0."""
import signal
import socket
import struct
import threading
import time

import grpc

from conftest import CHANNEL_OPTIONS, method


def test_sigterm_lets_streaming_calls_in_flight_finish(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    channel = grpc.insecure_channel(ferry.target, options=CHANNEL_OPTIONS)
    stream_call = method(channel, "unary_stream", "ServerStream")
    results = []
    lock = threading.Lock()
    started = threading.Barrier(21)

    def run():
        # 20 messages, 50 ms apart: about a second of streaming per call.
        responses = stream_call(struct.pack(">III", 20, 64, 50), timeout=20)
        next(responses)
        started.wait()
        rest = list(responses)
        with lock:
            results.append(1 + len(rest))

    threads = [threading.Thread(target=run) for _ in range(20)]
    for t in threads:
        t.start()
    started.wait(10)
    ferry.exit_expected = True
    ferry.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", ferry.port), timeout=1).close()
    except OSError:
        refused = True
    for t in threads:
        t.join(30)
    channel.close()
    assert results == [20] * 20, f"calls cut short during the drain: {results}"
    assert refused, "the listener still accepted connections while draining"
    assert ferry.proc.wait(15) == 0, ferry.logs()
