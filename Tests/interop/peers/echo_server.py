"""A gRPC test upstream on grpcio (gRPC C-core), with raw-bytes methods so no generated code is needed.

Methods of service ferry.test.Echo:
  Unary         echoes the request; echoes `x-*` request metadata back as initial metadata and
                as trailing metadata (names marked `-t`, before any `-bin`); `x-status` chooses the final status, and
                then the request (UTF-8) is the status message. A `ferry-client-id` it was sent comes back
                as `x-seen-ferry-client-id`; with `x-report-deadline`, the time it had left comes back as
                `x-seen-time-remaining` (seconds).
  ClientStream  answers with the total byte count of all request messages (8-byte big endian).
  ServerStream  request = 4-byte count + 4-byte size + 4-byte delay ms; streams `count` messages.
  Bidi          echoes each message as it arrives.
  Sleep         waits until cancelled (or 30 s); records the cancellation and the grpc-timeout it saw.

Run as a process: python echo_server.py --port N [--name NAME]
"""
import argparse
import os
import random
import struct
import sys
import threading
import time
from concurrent import futures

import grpc

MAX_MESSAGE = 64 * 1024 * 1024
SERVICE = "ferry.test.Echo"


class EchoState:
    """What the server observed, for tests that run it in-process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.sleep_started = threading.Event()
        self.calls = 0
        self.peer_metadata = []
        self.time_remaining = []
        self.call_times = []         # time.monotonic() of every call's arrival
        self.unary_delay = 0.0       # seconds Unary waits before answering (a slow endpoint)
        self.unary_fails = None      # a grpc.StatusCode Unary answers with instead (a failing endpoint)
        self.fail_while = None       # a path: Unary answers UNAVAILABLE while it exists (an outage)
        self.unary_fail_rate = 0.0   # the share of Unary calls answered UNAVAILABLE, at random
        self.unary_stall_rate = 0.0  # the share of Unary calls that stall for unary_stall seconds first
        self.unary_stall = 0.0
        self.unary_metadata = []     # every Unary call's request metadata, as a dict
        self.stream_metadata = []    # every ServerStream call's request metadata, as a dict

    def count(self):
        with self.lock:
            self.calls += 1
            self.call_times.append(time.monotonic())


def trailer_key(key):
    """`x-a` -> `x-a-t`, `x-a-bin` -> `x-a-t-bin` (binary keys must keep their suffix)."""
    return key[:-4] + "-t-bin" if key.endswith("-bin") else key + "-t"


class Echo:
    def __init__(self, state, name):
        self.state = state
        self.name = name

    def _echo_metadata(self, context):
        md = [(k, v) for (k, v) in context.invocation_metadata() if k.startswith("x-")]
        return md

    def unary(self, request, context):
        self.state.count()
        if self.state.unary_delay:
            time.sleep(self.state.unary_delay)
        if self.state.unary_stall_rate and random.random() < self.state.unary_stall_rate:
            time.sleep(self.state.unary_stall)
        if self.state.unary_fails is not None:
            context.abort(self.state.unary_fails, f"{self.name} is failing")
        if self.state.fail_while and os.path.exists(self.state.fail_while):
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is failing while {self.state.fail_while} exists")
        if self.state.unary_fail_rate and random.random() < self.state.unary_fail_rate:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} failed this one")
        with self.state.lock:
            self.state.unary_metadata.append(dict(context.invocation_metadata()))
        md = self._echo_metadata(context)
        seen = dict(context.invocation_metadata())
        # What the proxy in front said about the call: the caller's identity, the time left.
        reports = [("x-seen-ferry-client-id", seen["ferry-client-id"])] if "ferry-client-id" in seen else []
        if "x-report-deadline" in seen and context.time_remaining() is not None:
            remaining = context.time_remaining()
            # The deadline as a wall-clock instant too: namespaces share the clock, so a client
            # on another node can compare it with when it started the call.
            reports += [("x-seen-time-remaining", "%.6f" % remaining), ("x-seen-deadline-at", "%.6f" % (time.time() + remaining))]
        context.send_initial_metadata(md + reports + [("x-upstream", self.name)])
        context.set_trailing_metadata([(trailer_key(k), v) for (k, v) in md if k != "x-status"])
        status = dict(md).get("x-status")
        if status is not None:
            code = next(c for c in grpc.StatusCode if c.value[0] == int(status))
            context.abort(code, request.decode("utf-8"))
        return request

    def client_stream(self, request_iterator, context):
        self.state.count()
        total = 0
        for message in request_iterator:
            total += len(message)
        return struct.pack(">Q", total)

    def server_stream(self, request, context):
        self.state.count()
        with self.state.lock:
            self.state.stream_metadata.append(dict(context.invocation_metadata()))
        count, size, delay_ms = struct.unpack(">III", request[:12])
        for i in range(count):
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
            yield bytes([i % 251]) * size

    def bidi(self, request_iterator, context):
        self.state.count()
        for message in request_iterator:
            yield message

    def sleep(self, request, context):
        self.state.count()
        md = dict(context.invocation_metadata())
        with self.state.lock:
            self.state.peer_metadata.append(md)
            self.state.time_remaining.append(context.time_remaining())
        context.add_callback(self.state.cancelled.set)
        self.state.sleep_started.set()
        deadline = time.time() + 30
        while context.is_active() and time.time() < deadline:
            time.sleep(0.01)
        return request


def make_server(port, name="grpcio", state=None, host="127.0.0.1", options=(), workers=64, credentials=None, health=None):
    """An Echo server on `port` (0: any); `credentials` (grpc.ssl_server_credentials) serves TLS;
    `health` (grpcio-health-checking's HealthServicer) serves grpc.health.v1.Health beside it."""
    state = state or EchoState()
    echo = Echo(state, name)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(echo.unary),
        "ClientStream": grpc.stream_unary_rpc_method_handler(echo.client_stream),
        "ServerStream": grpc.unary_stream_rpc_method_handler(echo.server_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(echo.bidi),
        "Sleep": grpc.unary_unary_rpc_method_handler(echo.sleep),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
        options=[("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
                 ("grpc.so_reuseport", 0)] + list(options),
        maximum_concurrent_rpcs=4096,
    )
    if health is not None:
        from grpc_health.v1 import health_pb2_grpc
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = (server.add_secure_port(f"{host}:{port}", credentials) if credentials is not None
             else server.add_insecure_port(f"{host}:{port}"))
    if bound == 0:
        raise RuntimeError(f"cannot bind {host}:{port}")
    server.start()
    return server, bound, state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="grpcio")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--delay-ms", type=float, default=0, help="Unary waits this long before answering")
    parser.add_argument("--fail-rate", type=float, default=0, help="the share of Unary calls answered UNAVAILABLE")
    parser.add_argument("--fail-all", action="store_true", help="answer every Unary call with UNAVAILABLE")
    parser.add_argument("--fail-while", default=None, help="answer Unary calls with UNAVAILABLE while this file exists")
    parser.add_argument("--stall-rate", type=float, default=0, help="the share of Unary calls that stall first")
    parser.add_argument("--stall-ms", type=float, default=1000, help="how long a stalled call waits")
    parser.add_argument("--workers", type=int, default=64, help="handler threads (stalled calls hold one each)")
    args = parser.parse_args()
    server, port, state = make_server(args.port, args.name, host=args.host, workers=args.workers)
    state.unary_delay = args.delay_ms / 1000
    state.unary_fail_rate = args.fail_rate
    state.unary_stall_rate = args.stall_rate
    state.unary_stall = args.stall_ms / 1000
    if args.fail_all:
        state.unary_fails = grpc.StatusCode.UNAVAILABLE
    state.fail_while = args.fail_while
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
