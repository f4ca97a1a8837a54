"""A scripted HTTP/2 upstream on python-h2, for behaviours real servers rarely show.

The request path chooses the behaviour:
  /reset/immediately/<code>    RST_STREAM(<code>) as soon as the request headers arrive
  /reset/after-headers/<code>  response headers (gRPC), then RST_STREAM(<code>)
  /reset/during-data/<code>    response headers, one length-prefixed message, then RST_STREAM(<code>)
  anything else                200 + echo of the body + grpc-status 0 trailers
"""
import socket
import threading

import h2.config
import h2.connection
import h2.events


class H2Upstream:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.resets_sent = 0
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
        h2c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
        h2c.initiate_connection()
        conn.sendall(h2c.data_to_send())
        paths = {}
        bodies = {}
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
                        bodies[event.stream_id] = b""
                        self._on_request(h2c, event.stream_id, paths[event.stream_id])
                    elif isinstance(event, h2.events.DataReceived):
                        h2c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                        if event.stream_id in bodies:
                            bodies[event.stream_id] += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        path = paths.get(event.stream_id, "")
                        if not path.startswith("/reset/") and h2c.state_machine.state != "CLOSED":
                            try:
                                h2c.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                                h2c.send_data(event.stream_id, bodies.get(event.stream_id, b""))
                                h2c.send_headers(event.stream_id, [("grpc-status", "0")], end_stream=True)
                            except Exception:
                                pass
                conn.sendall(h2c.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            conn.close()

    def _on_request(self, h2c, stream_id, path):
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "reset":
            return
        when, code = parts[1], int(parts[2])
        if when in ("after-headers", "during-data"):
            h2c.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        if when == "during-data":
            h2c.send_data(stream_id, b"\x00\x00\x00\x00\x03abc")
        h2c.reset_stream(stream_id, error_code=code)
        self.resets_sent += 1
