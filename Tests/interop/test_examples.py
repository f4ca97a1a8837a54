"""The configurations in examples/ pass `ferry check` (the two-node pair with certificates made
by scripts/make-certs), and the Kubernetes manifests are valid YAML whose pieces fit together:
the Ferry container's --config is in a mounted ConfigMap of the same file, that config passes
`ferry check`, and the probes ask the admin port it listens on."""
import glob
import os
import shutil
import subprocess

import pytest
import yaml

from conftest import ferry_binary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")


def check(path):
    out = subprocess.run([ferry_binary(), "check", path], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith(f"{path}: OK"), (path, out.stdout, out.stderr)
    return out.stdout


@pytest.mark.parametrize("name", ["sidecar.yaml", "node.yaml"])
def test_the_sidecar_and_node_examples_pass_check(name):
    check(os.path.join(EXAMPLES, name))


def test_the_xds_example_passes_check_and_names_its_control_plane():
    out = check(os.path.join(EXAMPLES, "xds.yaml"))
    assert "xds: ADS from 127.0.0.1:18000 as node sidecar~10.0.0.7~web-7f9c.shop~shop.svc.cluster.local (cluster web)" in out, out


def test_the_two_node_mtls_pair_passes_check_with_certificates_made_for_it(tmp_path):
    pair = tmp_path / "two-node"
    shutil.copytree(os.path.join(EXAMPLES, "two-node"), pair)
    subprocess.run([os.path.join(REPO, "scripts", "make-certs"), str(pair / "certs"), "node-a", "node-b"],
                   check=True, capture_output=True, timeout=60)
    a = check(str(pair / "node-a.yaml"))
    b = check(str(pair / "node-b.yaml"))
    assert "identities spiffe://ferry.test/ns/default/sa/node-b" in a, a
    assert "authorization: allow spiffe://ferry.test/ns/default/sa/node-a" in b, b


def manifests():
    return sorted(glob.glob(os.path.join(EXAMPLES, "kubernetes", "*.yaml")))


@pytest.mark.parametrize("path", manifests(), ids=os.path.basename)
def test_kubernetes_manifests_fit_together(path, tmp_path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    assert docs
    for d in docs:
        assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), d
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    assert workloads, path
    for w in workloads:
        spec = w["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        pod = spec["template"]["spec"]
        ferry = next(c for c in pod["containers"] if c["name"] == "ferry")
        args = ferry["args"]
        assert args[0] == "run" and "--config" in args
        config_path = args[args.index("--config") + 1]
        mount = next(m for m in ferry["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        config_map = maps[volume["configMap"]["name"]]
        text = config_map["data"][os.path.basename(config_path)]
        written = tmp_path / f"{w['metadata']['name']}.yaml"
        written.write_text(text)
        check(str(written))
        admin_port = int(yaml.safe_load(text)["admin"]["address"].rsplit(":", 1)[1])
        ports = {p.get("name"): p["containerPort"] for p in ferry["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            port = ferry[probe]["httpGet"]["port"]
            assert (ports.get(port) if isinstance(port, str) else port) == admin_port, (probe, port)
            assert ferry[probe]["httpGet"]["path"] in ("/ready", "/live")
