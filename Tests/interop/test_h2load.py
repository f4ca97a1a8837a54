"""nghttp2's own tools through Ferry: h2load load with zero failures, nghttp for plain HTTP/2."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import free_port, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("h2load") is None or shutil.which("nghttpd") is None,
                                reason="nghttp2-client / nghttp2-server not installed")


@pytest.fixture
def nghttpd():
    docroot = tempfile.mkdtemp(prefix="ferry-nghttpd-")
    with open(os.path.join(docroot, "echo"), "wb") as f:
        f.write(b"\x00\x00\x00\x00\x5f" + b"r" * 95)
    port = free_port()
    proc = subprocess.Popen(["nghttpd", "--no-tls", "-d", docroot, "--trailer", "grpc-status: 0", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield port
    proc.terminate()
    proc.wait()


def run_h2load(target_port, requests, clients, streams, extra=()):
    body = tempfile.NamedTemporaryFile(delete=False)
    body.write(b"\x00\x00\x00\x00\x5f" + b"q" * 95)
    body.close()
    out = subprocess.run(["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-d", body.name,
                          "-H", "content-type: application/grpc", "-H", "te: trailers", *extra,
                          f"http://127.0.0.1:{target_port}/echo"],
                         capture_output=True, text=True, timeout=600)
    return out.stdout + out.stderr


def test_h2load_200k_grpc_posts_through_ferry_zero_failures(nghttpd, ferry_factory):
    ferry = ferry_factory([nghttpd])
    output = run_h2load(ferry.port, 200_000, 10, 10)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", output)
    assert m, output
    total, started, done, succeeded, failed, errored, timeout = map(int, m.groups())
    assert (total, done, succeeded, failed, errored, timeout) == (200_000, 200_000, 200_000, 0, 0, 0), output
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    assert codes and int(codes.group(1)) == 200_000, output


def test_nghttp_plain_http2_get_and_404_passthrough(nghttpd, ferry_factory):
    ferry = ferry_factory([nghttpd])
    ok = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{ferry.port}/echo"], capture_output=True, timeout=30)
    assert b":status: 200" in ok.stdout
    assert b"grpc-status: 0" in ok.stdout          # nghttpd's trailer crossed the proxy
    missing = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{ferry.port}/no-such-file"], capture_output=True,
                             timeout=30)
    assert b":status: 404" in missing.stdout
