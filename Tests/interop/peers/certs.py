"""Throwaway certificates for the TLS tests, made by the repo's scripts/make-certs."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TRUST_DOMAIN = "spiffe://ferry.test"


def make_certs(directory, *names, extra=()):
    """Issues `names` (NAME or NAME=spiffe path) into `directory`, with its CA made on first use."""
    subprocess.run([os.path.join(ROOT, "scripts", "make-certs"), directory, *extra, *names],
                   check=True, capture_output=True, text=True)
