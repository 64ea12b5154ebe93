"""HTTP requests to a URL as the registry host sees it, never from the gcops machine.

Two ways, tried in this order:

- `TunnelHTTP`: http.client over `Host.open_tcp` (an SSH direct-tcpip
  channel; a plain socket for `host = "local"`), with TLS done here for
  https URLs (verified against `ca_file`, else the system's CAs);
- `CurlHTTP`: `curl` run on the host (the host script `http_request.sh`) for
  servers that forbid forwarding. Everything curl is told (URL, method,
  headers, credentials) goes on its stdin as a curl config (`-K -`), so no
  secret reaches a command line; curl checks TLS against the playbook var
  `registry_ca_file` (a path on the host), else the host's CA store.

`transport_for(host, ...)` gives the tunnel, or the curl fallback when the
SSH server refuses forwarding.
"""
from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from gcops.transport.hosts import ForwardingRefused, Host, HostError
from gcops.hostside import scripts

TIMEOUT = 15.0
MAX_BODY = 1 << 20     # a probe or token answer is small; never read more than this


class HTTPFailed(HostError):
    """The request got no HTTP answer (connection refused, TLS failure, timeout)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]      # lower-case names; repeated headers joined with ", "
    body: bytes = field(repr=False)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class Transport(Protocol):
    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"") -> Response: ...


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL. Raises ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


class _HostConnection(http.client.HTTPConnection):
    """http.client's connection whose socket is opened from the host's side (and TLS-wrapped here)."""

    def __init__(self, gcops_host: Host, address: str, port: int, timeout: float,
                 tls: ssl.SSLContext | None):
        super().__init__(address, port, timeout=timeout)
        self._gcops_host, self._tls = gcops_host, tls

    def connect(self) -> None:
        sock = self._gcops_host.open_tcp(self.host, self.port, timeout=self.timeout)
        sock.settimeout(self.timeout)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except (ssl.SSLError, OSError):
                sock.close()
                raise
        self.sock = sock


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: `ca_file` if given, else the system's CAs."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class TunnelHTTP:
    """Requests through `Host.open_tcp`: one connection per request, closed after it."""

    def __init__(self, host: Host, *, ca_file: Path | None = None, timeout: float = TIMEOUT):
        self.host, self.ca_file, self.timeout = host, ca_file, timeout

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"") -> Response:
        """Give the answer. Raises ForwardingRefused, HTTPFailed (no answer), ConnectionLost."""
        scheme, address, port, path = _split(url)
        tls = tls_context(self.ca_file) if scheme == "https" else None
        conn = _HostConnection(self.host, address, port, self.timeout, tls)
        try:
            conn.request(method, path, body=body if body or method in ("PUT", "POST") else None,
                         headers={"Connection": "close", **(headers or {})})
            resp = conn.getresponse()
            data = resp.read(MAX_BODY)
            merged: dict[str, str] = {}
            for name, value in resp.getheaders():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            return Response(resp.status, merged, data)
        except ForwardingRefused:
            raise
        except HostError as exc:
            raise HTTPFailed(f"{self.host.name}: {method} {scheme}://{address}:{port}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise HTTPFailed(f"{self.host.name}: {method} {scheme}://{address}:{port}: "
                             f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()


def _curl_quote(value: str) -> str:
    """A double-quoted curl config value ("\\" and '"' escaped; no newlines allowed)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("a curl config value cannot contain a newline or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_config(method: str, url: str, headers: dict[str, str], body: bytes, timeout: float,
                cacert: str = "") -> bytes:
    """The curl config (`-K -`) for one request: every value quoted, secrets included, none on argv."""
    lines = [f"url = {_curl_quote(url)}", f"request = {_curl_quote(method)}",
             f"max-time = {int(max(1, timeout))}", 'header = "Expect:"']
    if cacert:
        lines.append(f"cacert = {_curl_quote(cacert)}")
    lines += [f"header = {_curl_quote(f'{k}: {v}')}" for k, v in headers.items()]
    if body:
        if body.startswith(b"@"):
            raise ValueError("a request body starting with '@' would make curl read a file")
        lines.append(f"data-binary = {_curl_quote(body.decode('utf-8'))}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse_curl_output(raw: bytes) -> Response:
    """Parse `curl -i` output (header blocks then body); 1xx blocks are skipped. Raises ValueError."""
    rest = raw
    while True:
        head, sep, body = rest.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = rest.partition(b"\n\n")
        lines = head.decode("iso-8859-1").splitlines()
        if not lines or not lines[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP answer: {raw[:80]!r}")
        status = int(lines[0].split()[1])
        if 100 <= status < 200 and sep:
            rest = body
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        return Response(status, headers, body)


class CurlHTTP:
    """Requests made by `curl` on the host (the fallback where forwarding is refused).

    `cacert`: a CA bundle on the host for https (default: the host's CA store)."""

    def __init__(self, host: Host, *, timeout: float = TIMEOUT, cacert: str = ""):
        self.host, self.timeout, self.cacert = host, timeout, cacert

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"") -> Response:
        """Give the answer. Raises HTTPFailed (no curl, no answer), HostError."""
        _split(url)
        config = curl_config(method, url, headers or {}, body, self.timeout, self.cacert)
        result = self.host.run(scripts.command("http_request"), input=config, timeout=self.timeout + 15,
                               check=False)
        if result.exit_code == 127:
            raise HTTPFailed(f"{self.host.name}: no curl on the host, and the SSH server refuses forwarding")
        if result.exit_code != 0:
            err = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise HTTPFailed(f"{self.host.name}: curl {method} {url} failed (exit {result.exit_code}): {err[0]}")
        try:
            return parse_curl_output(result.stdout)
        except ValueError as exc:
            raise HTTPFailed(f"{self.host.name}: curl {method} {url}: {exc}") from exc


class FallbackHTTP:
    """The tunnel; after the server refuses forwarding once, curl on the host for every request."""

    def __init__(self, host: Host, *, ca_file: Path | None = None, host_ca_file: str = "",
                 timeout: float = TIMEOUT):
        self.tunnel = TunnelHTTP(host, ca_file=ca_file, timeout=timeout)
        self.curl = CurlHTTP(host, timeout=timeout, cacert=host_ca_file)
        self.forwarding = True

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"") -> Response:
        if self.forwarding:
            try:
                return self.tunnel.request(method, url, headers=headers, body=body)
            except ForwardingRefused:
                self.forwarding = False
        return self.curl.request(method, url, headers=headers, body=body)


def transport_for(host: Host, *, ca_file: Path | None = None, host_ca_file: str = "",
                  timeout: float = TIMEOUT) -> FallbackHTTP:
    """How to reach URLs from `host`'s side: a forwarded channel (TLS checked here against `ca_file`, a
    path on this machine), else curl on the host (against `host_ca_file`, a path on the host)."""
    return FallbackHTTP(host, ca_file=ca_file, host_ca_file=host_ca_file, timeout=timeout)
