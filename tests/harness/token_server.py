"""TEST FIXTURE: a Docker token-auth server (what GitLab's /jwt/auth is to its registry), run inside a test host.

    python token_server.py PORT DIR     (DIR holds token.crt, token.key and users: "name:password" lines)

GET /auth?service=..&scope=repository:<name>:<actions> with HTTP basic credentials
answers {"token": <ES256 JWT with x5c>} granting the requested actions; bad
credentials answer 401. The registry trusts DIR/token.crt (auth.token.rootcertbundle).
"""
from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER, SERVICE = "gcops-test-issuer", "gcops-test-registry"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_keys(d: Path) -> None:
    """A self-signed P-256 certificate (the registry's rootcertbundle) and its key, in d."""
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "gcops test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (d / "token.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "token.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))


def token(d: Path, user: str, scopes: list[str]) -> str:
    key = serialization.load_pem_private_key((d / "token.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((d / "token.crt").read_bytes())
    access = []
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "ES256",
              "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}
    claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
              "jti": uuid.uuid4().hex, "access": access}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def main(port: int, d: Path) -> None:
    users = dict(line.split(":", 1) for line in (d / "users").read_text().splitlines() if ":" in line)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            auth = self.headers.get("Authorization", "")
            try:
                user, _, password = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
            except (IndexError, ValueError):
                user, password = "", None
            if parts.path != "/auth" or user not in users or users[user] != password:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"token": token(d, user, parse_qs(parts.query).get("scope", []))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
