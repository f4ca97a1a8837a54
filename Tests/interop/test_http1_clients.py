"""HTTP/1.1 clients on a plaintext listener (which speaks HTTP/2 only): curl and Python's
http.client get a proper HTTP/1.1 505 with a body that says why, not HTTP/2 frames; each is
logged once; HTTP/2 and gRPC clients on the same listener are served as before."""
import http.client
import subprocess

from conftest import assert_still_serving


def test_http1_clients_get_a_505_that_says_why(grpc_upstream, ferry_factory):
    port, _ = grpc_upstream
    ferry = ferry_factory([port])
    connection = http.client.HTTPConnection("127.0.0.1", ferry.port, timeout=5)
    connection.request("GET", "/health")
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert response.status == 505 and response.reason == "HTTP Version Not Supported", (response.status, response.reason)
    assert response.getheader("Connection") == "close"
    assert "speaks HTTP/2 (and gRPC over it) only" in body, body

    curl = subprocess.run(["curl", "-sS", "--http1.1", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
                           f"http://127.0.0.1:{ferry.port}/ferry.test.Echo/Unary"], capture_output=True, text=True, timeout=10)
    assert curl.stdout.endswith("\n505") and "curl --http2-prior-knowledge" in curl.stdout, (curl.stdout, curl.stderr)
    # curl speaking HTTP/2 with prior knowledge to the same listener is served (no 505).
    h2 = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                         "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-",
                         f"http://127.0.0.1:{ferry.port}/ferry.test.Echo/Unary"],
                        input=b"\x00\x00\x00\x00\x02hi".decode(), capture_output=True, text=True, timeout=10)
    assert h2.stdout == "2 200", (h2.stdout, h2.stderr)
    assert_still_serving(ferry)

    logs = ferry.logs()
    assert logs.count("HTTP/1.x request on an HTTP/2 listener; answered 505") >= 1, logs
    assert "GET /health HTTP/1.1" in logs, logs
    assert ferry.alive()
