"""The write probe's pure parts: the decision, the auth flows (scripted answers), curl's config and output."""
from __future__ import annotations

import base64
import json

import pytest

from gcops.registry import host_http, probe
from gcops.registry.host_http import HTTPFailed, Response

URL = "http://127.0.0.1:5000"
CREDS = probe.ProbeCredentials("deployer", "pa\"ss\\word", "group/project")


@pytest.mark.parametrize("status, restarted, creds, ok, verified, fragment", [
    (405, "no", False, True, True, "405"),
    (405, "unknown", True, True, True, "405"),
    (401, "yes", False, True, False, "NOT verified"),
    (403, "yes", False, True, False, "NOT verified"),
    (401, "no", False, False, False, "did not demonstrably restart"),
    (401, "unknown", False, False, False, "restarted=unknown"),
    (401, "yes", True, False, False, "credentials were refused"),
    (403, "yes", True, False, False, "credentials were refused"),
    (400, "yes", True, False, False, "NOT read-only (write probe answered 400)"),
    (400, "yes", False, False, False, "NOT read-only"),
    (202, "yes", False, False, False, "NOT read-only"),
    (404, "yes", True, False, False, "NOT read-only"),
    (500, "yes", False, False, False, "answered 500"),
    (None, "yes", False, False, False, "did not answer"),
])
def test_decide(status, restarted, creds, ok, verified, fragment):
    v = probe.decide(status, restarted, creds)
    assert (v.ok_to_collect, v.verified) == (ok, verified)
    assert fragment in v.reason


class Scripted:
    """A Transport answering from a list, recording every request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def request(self, method, url, *, headers=None, body=b""):
        self.sent.append((method, url, dict(headers or {}), body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def r(status, headers=None, body=b""):
    return Response(status, {k.lower(): v for k, v in (headers or {}).items()}, body)


def test_anonymous_probe_is_one_invalid_manifest_put():
    http = Scripted(r(405))
    assert probe.write_probe(http, URL + "/", None) == probe.ProbeResult(405, "none")
    [(method, url, headers, body)] = http.sent
    assert (method, url, body) == ("PUT", f"{URL}/v2/gcops-probe/manifests/gcops-probe", b"{}")
    assert "Authorization" not in headers and headers["Content-Type"] == probe.MANIFEST_TYPE


def test_basic_auth_retries_with_credentials_on_the_configured_repository():
    http = Scripted(r(401, {"WWW-Authenticate": 'Basic realm="gcops-test"'}), r(405))
    assert probe.write_probe(http, URL, CREDS) == probe.ProbeResult(405, "basic")
    auth = http.sent[1][2]["Authorization"]
    assert base64.b64decode(auth.split()[1]).decode() == 'deployer:pa"ss\\word'
    assert http.sent[1][1] == f"{URL}/v2/group/project/manifests/gcops-probe"


def test_token_auth_gets_a_bearer_token_from_the_realm():
    challenge = ('Bearer realm="https://gitlab.example.com/jwt/auth",service="container_registry",'
                 'scope="repository:group/project:push,pull"')
    http = Scripted(r(401, {"WWW-Authenticate": challenge}), r(200, body=json.dumps({"token": "T0K"}).encode()),
                    r(405))
    assert probe.write_probe(http, URL, CREDS) == probe.ProbeResult(405, "bearer")
    method, realm_url, headers, _ = http.sent[1]
    assert method == "GET" and realm_url.startswith("https://gitlab.example.com/jwt/auth?")
    assert "scope=repository%3Agroup%2Fproject%3Apush%2Cpull" in realm_url and "service=container_registry" in realm_url
    assert headers["Authorization"].startswith("Basic ")
    assert http.sent[2][2]["Authorization"] == "Bearer T0K"


def test_token_realm_refusing_the_credentials_is_a_401():
    http = Scripted(r(401, {"WWW-Authenticate": 'Bearer realm="http://r/auth",service="s"'}), r(401))
    seen = probe.write_probe(http, URL, CREDS)
    assert (seen.status, seen.auth) == (401, "bearer") and "realm answered 401" in seen.detail
    assert not probe.decide(seen.status, "yes", True).ok_to_collect


def test_no_answer_is_status_none():
    seen = probe.write_probe(Scripted(HTTPFailed("refused")), URL, None)
    assert seen.status is None and "refused" in seen.detail


def test_credentials_never_show_their_password():
    assert "pa" not in repr(CREDS).split("username")[0] and 'pa"ss' not in repr(CREDS)


def test_parse_challenge_handles_quotes_and_bare_values():
    scheme, params = probe.parse_challenge('Bearer realm="https://a/b?x=1",service=reg,scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://a/b?x=1", "service": "reg", "scope": "repository:a/b:pull,push"}


def test_curl_config_quotes_every_value_and_keeps_secrets_off_argv():
    config = host_http.curl_config("PUT", "http://h/v2/x", {"Authorization": 'Basic "q"\\'}, b"{}", 10).decode()
    assert 'url = "http://h/v2/x"' in config and 'request = "PUT"' in config
    assert 'header = "Authorization: Basic \\"q\\"\\\\"' in config
    assert 'data-binary = "{}"' in config and "cacert" not in config
    assert 'cacert = "/etc/ssl/reg ca.pem"' in host_http.curl_config("GET", "https://h/", {}, b"", 10,
                                                                       "/etc/ssl/reg ca.pem").decode()
    with pytest.raises(ValueError):
        host_http.curl_config("GET", "http://h/\nx", {}, b"", 10)
    with pytest.raises(ValueError):
        host_http.curl_config("PUT", "http://h/", {}, b"@/etc/shadow", 10)


def test_parse_curl_output_skips_interim_answers():
    raw = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
           b"Www-Authenticate: Basic realm=x\r\n\r\nMethod not allowed\n")
    resp = host_http.parse_curl_output(raw)
    assert (resp.status, resp.header("allow"), resp.body) == (405, "GET, HEAD", b"Method not allowed\n")
    with pytest.raises(ValueError):
        host_http.parse_curl_output(b"curl: (7) Failed to connect")
