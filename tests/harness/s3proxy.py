"""A small HTTP proxy in front of an S3 server: adds latency, counts requests, can answer SlowDown.

These machines have no netem; this stands in for a far-away object store. Each
request waits `delay` seconds in its own thread (so concurrent requests wait
concurrently, as on a real network), then is forwarded unchanged (the Host
header too, so SigV4 signatures still match). With `slowdown_every = n`, every
n-th ListObjects request is answered `503 SlowDown` instead, as S3 does when
throttling.
"""
from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')


class DelayProxy:
    def __init__(self, upstream_port: int, *, delay: float = 0.1, slowdown_every: int = 0,
                 upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.slowdown_every = slowdown_every
        self.lock = threading.Lock()
        self.requests = 0
        self.list_requests = 0
        self.slowdowns = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                is_list = self.command == "GET" and ("list-type" in query or "prefix" in query
                                                     or "delimiter" in query or "marker" in query)
                with proxy.lock:
                    proxy.requests += 1
                    if is_list:
                        proxy.list_requests += 1
                    throttle = bool(is_list and proxy.slowdown_every
                                    and proxy.list_requests % proxy.slowdown_every == 0)
                    proxy.slowdowns += throttle
                time.sleep(proxy.delay)
                if throttle:
                    self._answer(503, {"Content-Type": "application/xml"}, SLOWDOWN)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self._answer(resp.status, {k: v for k, v in resp.getheaders()
                                               if k.lower() not in ("transfer-encoding", "connection",
                                                                    "content-length")}, data)
                finally:
                    conn.close()

            def _answer(self, status: int, headers: dict, data: bytes):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset_counts(self) -> None:
        with self.lock:
            self.requests = self.list_requests = self.slowdowns = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
