"""A raw HTTP/2 client for hostile and malformed input (frames built with hyperframe and
hpack, nothing checked on our side), and connection churn made with it."""
import socket
import struct
import time

import hpack
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, SettingsFrame, DataFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ECHO_UNARY = "/ferry.test.Echo/Unary"


def grpc_message(payload):
    """One length-prefixed gRPC message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def parse_frame(data):
    """The first whole frame in `data` and the bytes after it, or (None, data) if there is none."""
    if len(data) < 9:
        return None, data
    frame, length = Frame.parse_frame_header(memoryview(data[:9]))
    if len(data) < 9 + length:
        return None, data
    frame.parse_body(memoryview(data[9:9 + length]))
    return frame, data[9 + length:]


def parse_frames(data):
    """The whole frames at the start of `data`, and the bytes left after them."""
    frames = []
    frame, data = parse_frame(data)
    while frame is not None:
        frames.append(frame)
        frame, data = parse_frame(data)
    return frames, data


class RawClient:
    def __init__(self, port, timeout=5, sock=None):
        """A client on 127.0.0.1:`port`, or on `sock` (e.g. a TLS socket already handshaken)."""
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.encoder = hpack.Encoder()
        self.buffer = b""

    def send(self, *frames):
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def handshake(self):
        self.sock.sendall(PREFACE)
        self.send(SettingsFrame(0))

    def request_headers(self, stream_id, path=ECHO_UNARY, end_stream=True, extra=(), end_headers=True):
        block = self.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                     (":authority", "test"), ("content-type", "application/grpc"), ("te", "trailers")]
                                    + list(extra))
        frame = HeadersFrame(stream_id, block)
        if end_headers:
            frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame

    def unary_call(self, stream_id, payload=b"hi"):
        """Sends a whole gRPC unary request on `stream_id` (headers, one message, END_STREAM)."""
        data = DataFrame(stream_id, grpc_message(payload))
        data.flags.add("END_STREAM")
        self.send(self.request_headers(stream_id, end_stream=False), data)

    def frames(self, timeout=5.0, until=None):
        """Reads frames until the peer closes the connection, `timeout` passes, or `until(frame)`
        is true for a frame read (that frame is the last one returned)."""
        deadline = time.monotonic() + timeout
        out = []
        while time.monotonic() < deadline and not (until and out and until(out[-1])):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not data:
                break
            self.buffer += data
            frame, self.buffer = parse_frame(self.buffer)
            while frame is not None:
                out.append(frame)
                if until and until(frame):
                    return out          # frames after it stay in the buffer for the next read
                frame, self.buffer = parse_frame(self.buffer)
        return out

    def stream_ended(self, stream_id, timeout=5.0):
        """Reads until `stream_id` ends (END_STREAM or RST_STREAM); the frames read."""
        return self.frames(timeout, until=lambda f: f.stream_id == stream_id
                           and ("END_STREAM" in f.flags or f.type == 0x3))

    def goaway(self, timeout=5.0):
        for frame in self.frames(timeout):
            if isinstance(frame, GoAwayFrame):
                return frame
        return None

    def close(self, abrupt=False):
        if abrupt:   # RST instead of FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


# Requests that cost the server work and the client nothing; each a generator of frames.

def hpack_bomb_requests(client, count, first_stream=1, path=ECHO_UNARY):
    """One 4 KiB header added to the HPACK table, then `count` requests whose 16 KB header
    block names it 16,000 times: each decodes to ~66 MB of header fields. The requests' other
    fields are never indexed, so the 4 KiB entry stays the newest in the table (index 62)."""
    entry = hpack.HeaderTuple("x-bomb", "b" * 4000)
    block = client.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                   (":authority", "test"), ("content-type", "application/grpc"), entry])
    first = HeadersFrame(first_stream, block)
    first.flags.add("END_HEADERS")
    first.flags.add("END_STREAM")
    yield first
    base = client.encoder.encode([hpack.NeverIndexedHeaderTuple(name, value) for name, value in
                                  ((":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"))])
    for i in range(1, count + 1):
        frame = HeadersFrame(first_stream + 2 * i, base + bytes([0x80 | 62]) * 16000)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        yield frame


def empty_field_requests(client, count, first_stream=1, path=ECHO_UNARY):
    """Requests carrying 4,000 empty header fields each (an empty name is malformed)."""
    base = client.encoder.encode([hpack.NeverIndexedHeaderTuple(name, value) for name, value in
                                  ((":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"))])
    empty = b"\x00\x00\x00" * 4000                      # literal without indexing, new name: "" = ""
    for i in range(count):
        frame = HeadersFrame(first_stream + 2 * i, base + empty)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        yield frame


def window_overrun_requests(client, count, first_stream=1, path=ECHO_UNARY):
    """Requests that send more DATA than the stream window allows (Ferry's is 256 KiB; 320 KB each)."""
    for i in range(count):
        stream_id = first_stream + 2 * i
        yield client.request_headers(stream_id, path=path, end_stream=False)
        for _ in range(20):
            yield DataFrame(stream_id, b"\x00" * 16000)


CHURN_MODES = ("clean", "abrupt", "mid_header_block", "after_goaway")


def churn_one(port, mode, big_header=8000):
    """One connection opened and closed the way `mode` says:
    clean: one unary call, GOAWAY, close; abrupt: one call, then RST; mid_header_block: a
    HEADERS frame without END_HEADERS (a `big_header`-byte field), then RST; after_goaway:
    the client sends GOAWAY right after its preface and waits for Ferry to close."""
    client = RawClient(port)
    try:
        client.handshake()
        if mode in ("clean", "abrupt"):
            client.unary_call(1)
            frames = client.stream_ended(1)
            assert any(f.stream_id == 1 and "END_STREAM" in f.flags for f in frames), f"call not answered: {frames}"
            if mode == "clean":
                client.send(GoAwayFrame(0, last_stream_id=0))
            client.close(abrupt=(mode == "abrupt"))
        elif mode == "mid_header_block":
            client.send(client.request_headers(1, end_stream=True, end_headers=False,
                                               extra=[("x-big", "v" * big_header)]))
            client.close(abrupt=True)
        elif mode == "after_goaway":
            client.send(GoAwayFrame(0, last_stream_id=0))
            client.frames(timeout=0.05)
            client.close()
        else:
            raise ValueError(mode)
    except BaseException:
        client.close()
        raise


def churn(port, count, modes=CHURN_MODES):
    """`count` connections, cycling through `modes`; returns how many of each mode were made."""
    made = {m: 0 for m in modes}
    for i in range(count):
        mode = modes[i % len(modes)]
        churn_one(port, mode)
        made[mode] += 1
    return made


if __name__ == "__main__":
    import sys
    print(churn(int(sys.argv[1]), int(sys.argv[2])))
