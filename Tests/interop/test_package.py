"""scripts/package builds a Debian package that dpkg installs for real: the binary, a systemd
unit that `systemd-analyze verify` accepts, a default configuration (a conffile) that passes
`ferry check` and runs as the package's `ferry` user (SIGHUP reloads, SIGTERM drains and exits
0), a man page; `dpkg --purge` takes it all away again. Installing needs root (CI runs as root)."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ferry_binary
from netutil import wait_for_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*command, **kwargs):
    return subprocess.run(list(command), capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dpkg"), reason="dpkg -i needs root")
def test_the_debian_package_installs_verifies_runs_and_purges(tmp_path):
    made = run(os.path.join(REPO, "scripts", "package"), "--binary", ferry_binary(), "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    deb = made.stdout.strip().splitlines()[-1]
    contents = run("dpkg-deb", "--contents", deb).stdout
    for path in ("./usr/bin/ferry", "./lib/systemd/system/ferry.service", "./etc/ferry/ferry.yaml",
                 "./usr/share/man/man1/ferry.1.gz", "./usr/share/doc/ferry/copyright", "./usr/share/doc/ferry/changelog.gz"):
        assert path in contents, (path, contents)
    assert run("dpkg-deb", "--field", deb, "Package").stdout.strip() == "ferry"
    assert run("dpkg-deb", "--info", deb, "conffiles").stdout.split() == ["/etc/ferry/ferry.yaml", "/etc/logrotate.d/ferry"], \
        "the config and the logrotate file are conffiles"

    installed = run("dpkg", "-i", deb)
    try:
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert run("dpkg-query", "-W", "-f=${Status}", "ferry").stdout == "install ok installed"
        version = run("/usr/bin/ferry", "--version")
        assert version.stdout == run(ferry_binary(), "--version").stdout, version
        assert run("getent", "passwd", "ferry").returncode == 0, "the package's system user"
        verify = run("systemd-analyze", "verify", "/lib/systemd/system/ferry.service")
        assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
        unit = open("/lib/systemd/system/ferry.service").read()
        for line in ("ExecStart=/usr/bin/ferry run --config /etc/ferry/ferry.yaml", "ExecReload=/bin/kill -HUP $MAINPID",
                     "KillSignal=SIGTERM", "Restart=on-failure", "User=ferry", "NoNewPrivileges=yes", "ProtectSystem=strict",
                     "LogsDirectory=ferry"):
            assert line in unit, line
        assert run("/usr/bin/ferry", "check", "/etc/ferry/ferry.yaml").returncode == 0
        rotate = open("/etc/logrotate.d/ferry").read()
        assert "/var/log/ferry/*.log" in rotate and "systemctl reload ferry.service" in rotate, rotate
        man = run("man", "-l", "/usr/share/man/man1/ferry.1.gz", env={**os.environ, "MANPAGER": "cat", "PAGER": "cat"})
        assert "ferry run --config <path>" in man.stdout and "ferry check" in man.stdout, man.stdout[:500]

        # The unit's command, as its user: it starts, reloads on SIGHUP, drains and exits 0 on SIGTERM.
        proc = subprocess.Popen(["/usr/bin/ferry", "run", "--config", "/etc/ferry/ferry.yaml"], user="ferry", group="ferry",
                                extra_groups=[], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_port(4140)
            wait_for_port(9990)
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert "configuration reloaded" in out and "drained" in out, out
    finally:
        purged = run("dpkg", "--purge", "ferry")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not os.path.exists("/usr/bin/ferry") and not os.path.exists("/etc/ferry/ferry.yaml")
    assert not os.path.exists("/lib/systemd/system/ferry.service")
    assert run("getent", "passwd", "ferry").returncode != 0, "purge removes the user"
