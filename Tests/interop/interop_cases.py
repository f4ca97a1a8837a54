"""gRPC's interop test cases (those needing no cloud credentials or caching proxy), on grpcio.

Each case takes a function that makes a channel and raises AssertionError (or an RpcError)
on failure. Sizes and messages are the ones gRPC's interop descriptions give.
"""
import os
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))
import empty_pb2  # noqa: E402
import messages_pb2  # noqa: E402
import test_pb2_grpc  # noqa: E402

ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
REQUEST_SIZES = [27182, 8, 1828, 45904]
RESPONSE_SIZES = [31415, 9, 2653, 58979]


def payload(size):
    return messages_pb2.Payload(body=b"\x00" * size)


def stub(channel):
    return test_pb2_grpc.TestServiceStub(channel)


def expect_status(fn, code, message=None):
    try:
        fn()
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code.name}, got {e.code().name}: {e.details()}"
        if message is not None:
            assert e.details() == message, f"message {e.details()!r} != {message!r}"
        return e
    raise AssertionError(f"expected {code.name}, the call succeeded")


def empty_unary(make_channel):
    with make_channel() as ch:
        assert stub(ch).EmptyCall(empty_pb2.Empty(), timeout=10) == empty_pb2.Empty()


def large_unary(make_channel, channel=None):
    def run(ch):
        reply = stub(ch).UnaryCall(messages_pb2.SimpleRequest(response_size=314159, payload=payload(271828)), timeout=10)
        assert len(reply.payload.body) == 314159 and reply.payload.body == b"\x00" * 314159
    if channel is not None:
        return run(channel)
    with make_channel() as ch:
        run(ch)


def client_streaming(make_channel):
    with make_channel() as ch:
        reply = stub(ch).StreamingInputCall(iter([messages_pb2.StreamingInputCallRequest(payload=payload(n))
                                                  for n in REQUEST_SIZES]), timeout=10)
        assert reply.aggregated_payload_size == 74922, reply.aggregated_payload_size


def server_streaming(make_channel):
    with make_channel() as ch:
        request = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=n) for n in RESPONSE_SIZES])
        sizes = [len(r.payload.body) for r in stub(ch).StreamingOutputCall(request, timeout=10)]
        assert sizes == RESPONSE_SIZES, sizes


class Pinger:
    """Feeds a full-duplex call one request at a time."""

    def __init__(self):
        self.cond = threading.Condition()
        self.queue = []
        self.done = False

    def send(self, request):
        with self.cond:
            self.queue.append(request)
            self.cond.notify()

    def close(self):
        with self.cond:
            self.done = True
            self.cond.notify()

    def __iter__(self):
        while True:
            with self.cond:
                while not self.queue and not self.done:
                    self.cond.wait()
                if self.queue:
                    item = self.queue.pop(0)
                else:
                    return
            yield item


def ping_pong(make_channel):
    with make_channel() as ch:
        pinger = Pinger()
        responses = stub(ch).FullDuplexCall(iter(pinger), timeout=10)
        for req_size, resp_size in zip(REQUEST_SIZES, RESPONSE_SIZES):
            pinger.send(messages_pb2.StreamingOutputCallRequest(
                response_parameters=[messages_pb2.ResponseParameters(size=resp_size)], payload=payload(req_size)))
            reply = next(responses)
            assert len(reply.payload.body) == resp_size
        pinger.close()
        assert list(responses) == []


def empty_stream(make_channel):
    with make_channel() as ch:
        assert list(stub(ch).FullDuplexCall(iter([]), timeout=10)) == []


def custom_metadata(make_channel):
    with make_channel() as ch:
        md = [ECHO_INITIAL, ECHO_TRAILING]
        reply, call = stub(ch).UnaryCall.with_call(
            messages_pb2.SimpleRequest(response_size=314159, payload=payload(271828)), metadata=md, timeout=10)
        assert len(reply.payload.body) == 314159
        assert dict(call.initial_metadata()).get(ECHO_INITIAL[0]) == ECHO_INITIAL[1]
        assert dict(call.trailing_metadata()).get(ECHO_TRAILING[0]) == ECHO_TRAILING[1]

        responses = stub(ch).FullDuplexCall(iter([messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=314159)], payload=payload(271828))]),
            metadata=md, timeout=10)
        assert [len(r.payload.body) for r in responses] == [314159]
        assert dict(responses.initial_metadata()).get(ECHO_INITIAL[0]) == ECHO_INITIAL[1]
        assert dict(responses.trailing_metadata()).get(ECHO_TRAILING[0]) == ECHO_TRAILING[1]


def _status_case(make_channel, message):
    status = messages_pb2.EchoStatus(code=2, message=message)
    with make_channel() as ch:
        expect_status(lambda: stub(ch).UnaryCall(messages_pb2.SimpleRequest(response_status=status), timeout=10),
                      grpc.StatusCode.UNKNOWN, message)
        expect_status(lambda: list(stub(ch).FullDuplexCall(
            iter([messages_pb2.StreamingOutputCallRequest(response_status=status)]), timeout=10)),
            grpc.StatusCode.UNKNOWN, message)


def status_code_and_message(make_channel):
    _status_case(make_channel, "test status message")


def special_status_message(make_channel):
    _status_case(make_channel, SPECIAL_MESSAGE)


def unimplemented_method(make_channel):
    with make_channel() as ch:
        expect_status(lambda: stub(ch).UnimplementedCall(empty_pb2.Empty(), timeout=10), grpc.StatusCode.UNIMPLEMENTED)


def unimplemented_service(make_channel):
    with make_channel() as ch:
        call = ch.unary_unary("/grpc.testing.UnimplementedService/UnimplementedCall",
                              request_serializer=empty_pb2.Empty.SerializeToString,
                              response_deserializer=empty_pb2.Empty.FromString)
        expect_status(lambda: call(empty_pb2.Empty(), timeout=10), grpc.StatusCode.UNIMPLEMENTED)


def cancel_after_begin(make_channel):
    with make_channel() as ch:
        gate = threading.Event()

        def never():
            gate.wait(10)
            return
            yield  # pragma: no cover

        future = stub(ch).StreamingInputCall.future(never(), timeout=10)
        time.sleep(0.1)
        future.cancel()
        gate.set()
        assert future.cancelled() or future.code() == grpc.StatusCode.CANCELLED


def cancel_after_first_response(make_channel):
    with make_channel() as ch:
        pinger = Pinger()
        responses = stub(ch).FullDuplexCall(iter(pinger), timeout=10)
        pinger.send(messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=31415)], payload=payload(27182)))
        assert len(next(responses).payload.body) == 31415
        responses.cancel()
        pinger.close()
        assert responses.code() == grpc.StatusCode.CANCELLED


def timeout_on_sleeping_server(make_channel):
    with make_channel() as ch:
        pinger = Pinger()
        responses = stub(ch).FullDuplexCall(iter(pinger), timeout=0.001)
        pinger.send(messages_pb2.StreamingOutputCallRequest(payload=payload(27182)))
        expect_status(lambda: list(responses), grpc.StatusCode.DEADLINE_EXCEEDED)
        pinger.close()


def client_compressed_unary(make_channel):
    with make_channel() as ch:
        request = messages_pb2.SimpleRequest(response_size=314159, payload=payload(271828),
                                             expect_compressed=messages_pb2.BoolValue(value=True))
        reply = stub(ch).UnaryCall(request, compression=grpc.Compression.Gzip, timeout=10)
        assert len(reply.payload.body) == 314159
        request.expect_compressed.value = False
        reply = stub(ch).UnaryCall(request, compression=grpc.Compression.NoCompression, timeout=10)
        assert len(reply.payload.body) == 314159


def server_compressed_unary(make_channel):
    with make_channel() as ch:
        for compressed in (True, False):
            reply = stub(ch).UnaryCall(messages_pb2.SimpleRequest(
                response_size=314159, payload=payload(271828),
                response_compressed=messages_pb2.BoolValue(value=compressed)), timeout=10)
            assert len(reply.payload.body) == 314159


def client_compressed_streaming(make_channel):
    with make_channel() as ch:
        requests = [messages_pb2.StreamingInputCallRequest(payload=payload(n), expect_compressed=messages_pb2.BoolValue(value=True))
                    for n in (27182, 45904)]
        reply = stub(ch).StreamingInputCall(iter(requests), compression=grpc.Compression.Gzip, timeout=10)
        assert reply.aggregated_payload_size == 73086


def server_compressed_streaming(make_channel):
    with make_channel() as ch:
        request = messages_pb2.StreamingOutputCallRequest(response_parameters=[
            messages_pb2.ResponseParameters(size=31415, compressed=messages_pb2.BoolValue(value=True)),
            messages_pb2.ResponseParameters(size=92653, compressed=messages_pb2.BoolValue(value=False))])
        assert [len(r.payload.body) for r in stub(ch).StreamingOutputCall(request, timeout=10)] == [31415, 92653]


def soak(make_channel):
    with make_channel() as ch:
        for _ in range(1000):
            large_unary(make_channel, channel=ch)
    for _ in range(100):
        with make_channel() as ch:
            large_unary(make_channel, channel=ch)


CASES = {f.__name__: f for f in [
    empty_unary, large_unary, client_streaming, server_streaming, ping_pong, empty_stream, custom_metadata,
    status_code_and_message, special_status_message, unimplemented_method, unimplemented_service,
    cancel_after_begin, cancel_after_first_response, timeout_on_sleeping_server, client_compressed_unary,
    server_compressed_unary, client_compressed_streaming, server_compressed_streaming, soak]}
