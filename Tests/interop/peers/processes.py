"""Test peers in processes of their own, so their latency and GIL are theirs, not the test's."""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

from netutil import free_port, wait_for_port

PEERS = os.path.dirname(os.path.abspath(__file__))


class EchoProcess:
    """echo_server.py in its own process; `flags` are its options (--delay-ms, --fail-rate, ...)."""

    def __init__(self, name, *flags, port=None, host="127.0.0.1"):
        self.name, self.flags, self.host = name, flags, host
        self.port = port or free_port()
        self.start()

    def start(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(PEERS, "echo_server.py"), "--port", str(self.port),
                                      "--host", self.host, "--name", self.name, *self.flags], stdout=subprocess.DEVNULL)
        wait_for_port(self.port, host=self.host)

    def freeze(self):
        """SIGSTOP: the process stops answering; its sockets stay open (the kernel still accepts bytes)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        """kill -9 (a crash); `start()` runs it again on the same port."""
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait()


class BlackHole:
    """An HTTP/2 upstream that never answers: it sends SETTINGS (100,000 streams) and a SETTINGS
    ack, then reads and drops every byte. Next to no CPU, so it does not compete with what is measured."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        settings = struct.pack(">HI", 3, 100_000)        # SETTINGS_MAX_CONCURRENT_STREAMS
        conn.sendall(struct.pack(">I", len(settings))[1:] + b"\x04\x00\x00\x00\x00\x00" + settings
                     + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        try:
            while conn.recv(1 << 16):
                pass
        except OSError:
            pass

    def stop(self):
        self.sock.close()
