"""A scripted HTTP/2 upstream on python-h2, for behaviours real servers rarely show.

The request path chooses the behaviour:
  /reset/immediately/<code>    RST_STREAM(<code>) as soon as the request headers arrive
  /reset/after-headers/<code>  response headers (gRPC), then RST_STREAM(<code>)
  /reset/during-data/<code>    response headers, one length-prefixed message, then RST_STREAM(<code>)
  /reset/after-data/<code>     response headers, the whole echoed body, then RST_STREAM(<code>)
  /malformed                   a DATA frame on stream 0 (a connection error for the peer)
  /details                     Trailers-Only INVALID_ARGUMENT with a grpc-status-details-bin value
  /hang                        never answers
  /fail-once/<key>             the first request with <key>: Trailers-Only UNAVAILABLE; later ones: echo
  /trailers-fail-once/<key>    the first: a message "bad", then grpc-status 14 in trailers; later: "good", 0
  /pushback-once/<ms>/<key>    the first: Trailers-Only UNAVAILABLE with grpc-retry-pushback-ms: <ms>; later: echo
  /goaway-first/<n>/<key>      the first <n> requests with <key>: GOAWAY naming the stream before it as the last
                               processed (the request was never processed); later ones: echo
  anything else                200 + echo of the body + grpc-status 0 trailers

Connection-wide behaviours, chosen when the server is made:
  goaway_after=N               on the first connection, when the N-th request arrives, GOAWAY with
                               the first request's id as last-stream-id: later streams are refused
  ping_storm=N                 N PINGs right after the preface, and again with every response
  max_concurrent_streams=N     advertise and enforce N (excess streams: REFUSED_STREAM)
  stop_reading=True            read the preface and the first request's headers, then never read again
  refuse_all=True              RST_STREAM(REFUSED_STREAM) on every request
  goaway_every=N               on every connection, when its N-th request arrives, GOAWAY naming the
                               stream before it as the last processed: that request and any later on
                               the connection are refused (never processed); the earlier ones are answered
"""
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame, PingFrame

# A google.rpc.Status (code 3, message "bad field") as protobuf, base64 without padding.
DETAILS_BIN = "CAMSCWJhZCBmaWVsZA"

# length 4, type DATA (0), no flags, stream 0, payload "oops"
MALFORMED_DATA_ON_STREAM_0 = b"\x00\x00\x04\x00\x00\x00\x00\x00\x00oops"


class H2Upstream:
    def __init__(self, goaway_after=0, ping_storm=0, max_concurrent_streams=None, stop_reading=False, refuse_all=False,
                 goaway_every=0):
        self.goaway_after = goaway_after
        self.goaway_every = goaway_every
        self.refuse_all = refuse_all
        self.ping_storm = ping_storm
        self.max_concurrent_streams = max_concurrent_streams
        self.stop_reading = stop_reading
        self.goaways_sent = 0
        self.connections = 0
        self.peak_streams = 0
        self.completed = 0
        self.refused_by_goaway = 0
        self.malformed_sent = 0
        self.requests = []           # every request's headers, in arrival order
        self.attempts = {}           # <key> of the *-once paths -> requests seen
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.resets_sent = 0
        self.resets_received = 0     # RST_STREAM frames from the proxy (it cancelled a stream)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with self.lock:
            self.connections += 1
            goaway_here = self.goaway_after and self.connections == 1
        h2c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
        if self.max_concurrent_streams is not None:
            h2c.local_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams})
        h2c.initiate_connection()
        out = h2c.data_to_send() + self._pings()
        conn.sendall(out)
        paths = {}
        bodies = {}
        requests_seen = []
        ignored = set()
        gone_away = False            # goaway_every: this connection sent its GOAWAY
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                                       for k, v in event.headers)
                        paths[event.stream_id] = headers.get(":path", "/")
                        with self.lock:
                            self.requests.append(headers)
                        bodies[event.stream_id] = b""
                        requests_seen.append(event.stream_id)
                        with self.lock:
                            self.peak_streams = max(self.peak_streams, len(h2c.streams))
                        if self.stop_reading:
                            conn.sendall(h2c.data_to_send())
                            while not self.stopped:
                                time.sleep(0.05)
                            return
                        if goaway_here and len(requests_seen) == self.goaway_after:
                            last = requests_seen[0]
                            ignored.update(requests_seen[1:])
                            with self.lock:                     # counted before sending (see /malformed)
                                self.goaways_sent += 1
                                self.refused_by_goaway += len(requests_seen) - 1
                            conn.sendall(h2c.data_to_send() + GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
                        elif goaway_here and len(requests_seen) > self.goaway_after:
                            ignored.add(event.stream_id)
                        if self.goaway_every and (gone_away or len(requests_seen) == self.goaway_every):
                            if not gone_away:
                                gone_away = True
                                last = max(0, event.stream_id - 2)
                                with self.lock:
                                    self.goaways_sent += 1
                                conn.sendall(h2c.data_to_send() + GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
                            ignored.add(event.stream_id)
                            with self.lock:
                                self.refused_by_goaway += 1
                            continue
                        if self.refuse_all:
                            h2c.reset_stream(event.stream_id, error_code=0x7)
                            ignored.add(event.stream_id)
                            with self.lock:                     # counted before sending (see /malformed)
                                self.resets_sent += 1
                            conn.sendall(h2c.data_to_send())
                            continue
                        if self._goaway_first(paths[event.stream_id]):
                            last = max(0, event.stream_id - 2)
                            ignored.add(event.stream_id)
                            with self.lock:                     # counted before sending (see /malformed)
                                self.goaways_sent += 1
                                self.refused_by_goaway += 1
                            conn.sendall(h2c.data_to_send() + GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
                            continue
                        if paths[event.stream_id] == "/details":
                            h2c.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/grpc"),
                                                               ("grpc-status", "3"), ("grpc-message", "bad field"),
                                                               ("grpc-status-details-bin", DETAILS_BIN)], end_stream=True)
                            ignored.add(event.stream_id)
                            conn.sendall(h2c.data_to_send())
                            continue
                        if paths[event.stream_id] == "/hang":
                            ignored.add(event.stream_id)
                            continue
                        if paths[event.stream_id] == "/malformed":
                            # DATA on stream 0 (RFC 9113 6.1: a connection error), written by hand
                            # since frame libraries refuse to build it. The socket stays open.
                            # Counted before it is sent: a test reading the count once its call failed
                            # must not race this thread (seen under a CPU hog: one short).
                            with self.lock:
                                self.malformed_sent += 1
                            conn.sendall(h2c.data_to_send() + MALFORMED_DATA_ON_STREAM_0)
                            continue
                        self._on_request(h2c, event.stream_id, paths[event.stream_id])
                    elif isinstance(event, h2.events.DataReceived):
                        h2c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                        if event.stream_id in bodies:
                            bodies[event.stream_id] += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        stream_id = event.stream_id
                        path = paths.get(stream_id, "")
                        if stream_id in ignored or path == "/malformed":
                            continue
                        once = self._once(path)
                        if once is not None:
                            for headers, data, trailers in once:
                                if data is None:
                                    h2c.send_headers(stream_id, headers, end_stream=True)
                                else:
                                    h2c.send_headers(stream_id, headers)
                                    h2c.send_data(stream_id, data if data is not True else bodies.get(stream_id, b""))
                                    h2c.send_headers(stream_id, trailers, end_stream=True)
                            conn.sendall(h2c.data_to_send())
                            continue
                        if path.startswith("/reset/after-data/"):
                            h2c.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                            h2c.send_data(stream_id, bodies.get(stream_id, b""))
                            h2c.reset_stream(stream_id, error_code=int(path.rsplit("/", 1)[1]))
                            self.resets_sent += 1
                        elif not path.startswith("/reset/"):
                            try:
                                h2c.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                                h2c.send_data(stream_id, bodies.get(stream_id, b""))
                                h2c.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
                                with self.lock:
                                    self.completed += 1
                            except h2.exceptions.StreamClosedError:
                                pass
                            conn.sendall(h2c.data_to_send() + self._pings())
                    elif isinstance(event, h2.events.StreamReset):
                        if event.remote_reset:
                            with self.lock:
                                self.resets_received += 1
                conn.sendall(h2c.data_to_send())
        except h2.exceptions.TooManyStreamsError:
            return
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            conn.close()

    def _goaway_first(self, path):
        """True for the first <n> requests of /goaway-first/<n>/<key>."""
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "goaway-first":
            return False
        key = "/".join(parts)
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            return self.attempts[key] <= int(parts[1])

    def _once(self, path):
        """The response of a *-once path: [(headers, data or None or True for the echo, trailers)]."""
        parts = path.strip("/").split("/")
        if not parts or parts[0] not in ("fail-once", "trailers-fail-once", "pushback-once"):
            return None
        key = "/".join(parts)
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            first = self.attempts[key] == 1
        ok_headers = [(":status", "200"), ("content-type", "application/grpc")]
        if parts[0] == "trailers-fail-once":
            body = b"\x00\x00\x00\x00\x03bad" if first else b"\x00\x00\x00\x00\x04good"
            return [(ok_headers, body, [("grpc-status", "14" if first else "0")])]
        if first:
            extra = [("grpc-retry-pushback-ms", parts[1])] if parts[0] == "pushback-once" else []
            return [(ok_headers + [("grpc-status", "14"), ("grpc-message", "try again")] + extra, None, None)]
        return [(ok_headers, True, [("grpc-status", "0")])]

    def _pings(self):
        return b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(self.ping_storm))

    def _on_request(self, h2c, stream_id, path):
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "reset" or parts[1] == "after-data":
            return
        when, code = parts[1], int(parts[2])
        if when in ("after-headers", "during-data"):
            h2c.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        if when == "during-data":
            h2c.send_data(stream_id, b"\x00\x00\x00\x00\x03abc")
        h2c.reset_stream(stream_id, error_code=code)
        self.resets_sent += 1
