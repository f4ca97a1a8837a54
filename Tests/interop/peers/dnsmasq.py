"""dnsmasq as a real DNS server for discovery tests and the soak: answers from a hosts file
(TTL 1 s) and SRV options on a port of 127.0.0.1, its hosts re-read on SIGHUP."""
import os
import signal
import socket
import subprocess
import tempfile
import time

from netutil import wait_until


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class DnsServer:
    """dnsmasq on 127.0.0.1:<port> answering from a hosts file (TTL 1 s) and SRV options."""

    def __init__(self, hosts, srv=(), port=None):
        self.dir = tempfile.mkdtemp(prefix="ferry-dns-")
        os.chmod(self.dir, 0o755)
        self.hosts = os.path.join(self.dir, "hosts")
        # A port given is kept (a restart must come back on it); otherwise one free for both
        # UDP and TCP (dnsmasq binds both) is chosen, and chosen again if taken meanwhile.
        self.fixed_port = port is not None
        self.port = port or free_dns_port()
        self.set_hosts(hosts, signal_it=False)
        self.srv = list(srv)
        self.start()

    def start(self):
        for _ in range(5):      # a restart can race the old process for the port: try again
            self.proc = subprocess.Popen(self.args(), stdout=self.log_file(), stderr=subprocess.STDOUT)
            if wait_until(lambda: answers(self.port) or self.proc.poll() is not None, 5.0) and self.proc.poll() is None:
                self.fixed_port = True           # Ferry now knows this port: a restart keeps it
                return
            if not self.fixed_port:
                self.port = free_dns_port()      # another process took it between choosing and binding
            time.sleep(0.2)
        with open(os.path.join(self.dir, "log")) as f:
            raise AssertionError("dnsmasq did not start:\n" + f.read()[-2000:])

    def log_file(self):
        if getattr(self, "log", None):
            self.log.close()
        self.log = open(os.path.join(self.dir, "log"), "a")
        return self.log

    def args(self):
        args = ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts}",
                "--local-ttl=1", "--local=/test/", f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--pid-file={self.dir}/pid", "--user=root", "--log-facility=-"]
        args += [f"--srv-host={s}" for s in self.srv]
        return args

    def set_hosts(self, text, signal_it=True):
        write_atomically(self.hosts, text)
        os.chmod(self.hosts, 0o644)
        if signal_it:
            self.proc.send_signal(signal.SIGHUP)         # dnsmasq reads its hosts files again

    def restart(self, srv):
        self.stop()
        self.srv = list(srv)
        self.start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.log.close()


def free_dns_port():
    """A port free on 127.0.0.1 for UDP and for TCP at once (dnsmasq listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


def answers(port):
    """True once something answers a DNS query on the port."""
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04ping\x04test\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(query, ("127.0.0.1", port))
            return s.recv(512)[:2] == b"\x12\x34"
        except OSError:
            return False
