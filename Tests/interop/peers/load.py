"""A steady gRPC load from grpcio client threads, recording every outcome.

Used by the routing, discovery and reload tests: they change things under a load and then
assert that no call failed and where the calls went (the echo server's `x-upstream` header).
"""
import collections
import threading
import time

import grpc

CHANNEL_OPTIONS = [("grpc.enable_retries", 0)]


class Load:
    def __init__(self, target, path="/ferry.test.Echo/Unary", threads=6, timeout=5.0, authority=None, payload=b"x" * 100,
                 metadata=None):
        options = list(CHANNEL_OPTIONS)
        if authority:
            options.append(("grpc.default_authority", authority))
        self.channels = [grpc.insecure_channel(target, options=options) for _ in range(2)]
        self.path = path
        self.threads = threads
        self.timeout = timeout
        self.payload = payload
        self.metadata = metadata
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []                 # (time, code, details, when the call started)
        self.by_upstream = collections.Counter()
        self.events = []                   # (time, upstream) of every successful call
        self.stopping = threading.Event()
        self.workers = []
        self.started = None
        self.elapsed = None

    def _run(self, index):
        call = self.channels[index % len(self.channels)].unary_unary(self.path)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                _, rpc = call.with_call(self.payload, timeout=self.timeout, metadata=self.metadata)
                upstream = dict(rpc.initial_metadata()).get("x-upstream", "?")
                with self.lock:
                    self.ok += 1
                    self.by_upstream[upstream] += 1
                    self.events.append((time.monotonic(), upstream))
            except grpc.RpcError as e:
                with self.lock:
                    self.failures.append((time.monotonic(), e.code(), e.details(), started))

    def start(self):
        self.started = time.monotonic()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.workers.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.workers:
            t.join(timeout=10)
        self.elapsed = time.monotonic() - self.started
        for c in self.channels:
            c.close()
        return self

    @property
    def rate(self):
        return (self.ok + len(self.failures)) / (self.elapsed or (time.monotonic() - self.started))

    def upstreams_since(self, t):
        with self.lock:
            return collections.Counter(u for (when, u) in self.events if when >= t)

    def first_call_to(self, upstream, after):
        with self.lock:
            for when, u in self.events:
                if when >= after and u == upstream:
                    return when
        return None

    def last_call_to(self, upstream):
        with self.lock:
            times = [when for when, u in self.events if u == upstream]
        return max(times) if times else None

    def summary(self):
        return f"{self.ok} ok, {len(self.failures)} failed, {self.rate:.0f} calls/s, by upstream {dict(self.by_upstream)}"


def fixed_calls(target, calls, callers, path="/ferry.test.Echo/Unary", body=b"x" * 100, timeout=10.0, rate=None, metadata=None):
    """`calls` unary calls shared by `callers` threads (a channel each), back to back, or with
    `rate` at that many calls per second in all (each caller on its own schedule, the callers'
    schedules staggered so they do not call in bursts). Returns one outcome per call:
    (seconds, the answering upstream's `x-upstream` or None, None) on success, or
    (seconds, None, (code, details)) on failure."""
    outcomes, lock, left = [], threading.Lock(), [calls]
    interval = callers / rate if rate else 0.0

    def run(index):
        with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            stub = channel.unary_unary(path)
            next_call = start + index * interval / callers
            while True:
                if interval:
                    delay = next_call - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    next_call = max(next_call + interval, time.monotonic())
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                t0 = time.monotonic()
                try:
                    _, call = stub.with_call(body, timeout=timeout, metadata=metadata)
                    outcome = (time.monotonic() - t0, dict(call.initial_metadata()).get("x-upstream"), None)
                except grpc.RpcError as e:
                    outcome = (time.monotonic() - t0, None, (e.code(), e.details()))
                with lock:
                    outcomes.append(outcome)

    start = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes
