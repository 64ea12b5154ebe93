"""An https registry_url signed by a private CA: named as a certificate problem, fixed by registry_ca_file."""
from __future__ import annotations

import subprocess

from tests.harness.gcops_cli import json_doc, run_gcops
from tests.integration.conftest import wait_for
from tests.integration.test_faults import config_for


def make_ca_and_cert(d):
    d.mkdir()
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=gcops test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


def test_private_ca_is_named_then_fixed_by_registry_ca_file(host_factory, tmp_path):
    h = host_factory("tls")
    ca, cert, key = make_ca_and_cert(tmp_path / "pki")
    # a real TLS endpoint on the host (openssl's test server answers every request with a 200 page)
    server = subprocess.Popen(h.nsenter_argv() + ["openssl", "s_server", "-accept", "127.0.0.1:5443", "-cert",
                                                  str(cert), "-key", str(key), "-www", "-quiet"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: h.sh("curl -sk -o /dev/null https://127.0.0.1:5443/", check=False).returncode == 0, 10,
                 "the TLS server")
        url = {"registry_url": "https://127.0.0.1:5443"}
        proc = run_gcops("--config", str(config_for(tmp_path, h, state="a", vars=url)), "check", "--json")
        assert proc.returncode == 1
        check = {c["name"]: c for c in json_doc(proc)["instances"][0]["checks"]}["registry_answering"]
        assert not check["ok"] and "certificate" in check["detail"] and "registry_ca_file" in check["detail"]
        fixed = {**url, "registry_ca_file": str(ca)}
        proc = run_gcops("--config", str(config_for(tmp_path, h, state="b", vars=fixed)), "check", "--json")
        check = {c["name"]: c for c in json_doc(proc)["instances"][0]["checks"]}["registry_answering"]
        assert check["ok"], check
    finally:
        server.kill()
        server.wait()
