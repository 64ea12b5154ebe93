"""The write probe that proves a registry refuses writes, also behind authentication.

The probe is a manifest PUT of an invalid body (`{}`) to the probe repository:
a read-only registry answers 405, a writable one 400 (MANIFEST_INVALID), and
either way nothing is created. Behind authentication the registry answers 401
before it looks at the method, so the probe logs in with the
`[instance.probe]` credentials: HTTP basic (htpasswd), or Docker token auth
(the 401's `WWW-Authenticate: Bearer realm=..,service=..,scope=..` -> GET the
realm with the basic credentials -> bearer token -> retry).

`decide()` turns what the probe saw, whether the registry process demonstrably
restarted after the read-only config was written, and whether credentials
were given, into "may GC run" and "was read-only verified".
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from gcops.errors import HostError
from gcops.registry.host_http import HTTPFailed, Response, Transport

DEFAULT_REPOSITORY = "gcops-probe"
PROBE_TAG = "gcops-probe"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class ProbeCredentials:
    """[instance.probe]: a user allowed to push to `repository` (the password never printed)."""

    username: str
    password: str = field(repr=False)
    repository: str = DEFAULT_REPOSITORY
    ca_file: Path | None = None   # CA for an https registry_url (default: the system's CAs)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class ProbeResult:
    status: int | None      # the answer to the write (None: no answer at all)
    auth: str               # "none" | "basic" | "bearer": how the last attempt authenticated
    detail: str = ""        # why there is no status, or what the auth step answered


class AuthFailed(HostError):
    """The token realm refused the credentials or gave no token."""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="..",service="..",scope=".."` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def probe_url(registry_url: str, repository: str = DEFAULT_REPOSITORY) -> str:
    return f"{registry_url.rstrip('/')}/v2/{repository}/manifests/{PROBE_TAG}"


def _put(http: Transport, url: str, authorization: str | None) -> Response:
    headers = {"Content-Type": MANIFEST_TYPE}
    if authorization:
        headers["Authorization"] = authorization
    return http.request("PUT", url, headers=headers, body=b"{}")


def bearer_token(http: Transport, challenge: dict[str, str], creds: ProbeCredentials, repository: str) -> str:
    """Ask the challenge's realm for a push token with the basic credentials. Raises AuthFailed, HTTPFailed."""
    realm = challenge.get("realm", "")
    if urlsplit(realm).scheme not in ("http", "https"):
        raise AuthFailed(f"token realm {realm!r} is not an http(s) URL")
    query = {"scope": challenge.get("scope") or f"repository:{repository}:push,pull"}
    if challenge.get("service"):
        query["service"] = challenge["service"]
    answer = http.request("GET", f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}",
                          headers={"Authorization": creds.basic()})
    if answer.status != 200:
        raise AuthFailed(f"token realm answered {answer.status}")
    try:
        doc = json.loads(answer.body)
        token = doc.get("token") or doc.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise AuthFailed("token realm gave no token")
    return token


def write_probe(http: Transport, registry_url: str, creds: ProbeCredentials | None) -> ProbeResult:
    """PUT an invalid manifest to the probe repository, logging in when asked and able.

    Never raises for the registry's answers; no answer at all gives status None.
    """
    repository = creds.repository if creds else DEFAULT_REPOSITORY
    url = probe_url(registry_url, repository)
    try:
        first = _put(http, url, None)
        if first.status != 401 or creds is None:
            return ProbeResult(first.status, "none")
        scheme, params = parse_challenge(first.header("www-authenticate"))
        if scheme == "bearer":
            try:
                token = bearer_token(http, params, creds, repository)
            except AuthFailed as exc:
                return ProbeResult(401, "bearer", str(exc))
            return ProbeResult(_put(http, url, f"Bearer {token}").status, "bearer")
        return ProbeResult(_put(http, url, creds.basic()).status, "basic")
    except HTTPFailed as exc:
        return ProbeResult(None, "none", str(exc))


@dataclass(frozen=True)
class Verification:
    ok_to_collect: bool     # GC may run
    verified: bool          # read-only proven by a 405 (read_only_verified)
    reason: str             # one line for the log and the run's error


def decide(write_status: int | None, restarted: str, has_credentials: bool) -> Verification:
    """Judge the window before GC (readonly mode).

    `write_status`: the probe's answer (None: none); `restarted`: "yes" | "no" |
    "unknown", whether every registry process started after the read-only
    config was written; `has_credentials`: [instance.probe] was set.
    405 -> verified. With credentials anything else refuses GC. Without them a
    401/403 (auth, not read-only, answered) allows GC, unverified, only if the
    registry demonstrably restarted with the read-only config.
    """
    if write_status == 405:
        return Verification(True, True, "write probe answered 405: read-only verified")
    if write_status is None:
        return Verification(False, False, "the registry did not answer the write probe; GC not run")
    if write_status in (401, 403):
        if has_credentials:
            return Verification(False, False, f"the [instance.probe] credentials were refused (write probe "
                                              f"answered {write_status}), so read-only cannot be verified; "
                                              "GC not run: check username, password and repository")
        if restarted == "yes":
            return Verification(True, False, f"writes need authentication (write probe answered {write_status}) "
                                             "and no [instance.probe] credentials are set: read-only NOT "
                                             "verified, only a registry restart after the read-only config "
                                             "was written was seen")
        return Verification(False, False, f"writes need authentication (write probe answered {write_status}), no "
                                          "[instance.probe] credentials are set, and the registry did not "
                                          f"demonstrably restart with the read-only config (restarted={restarted}); "
                                          "GC not run: set [instance.probe] credentials")
    return Verification(False, False, f"the registry is NOT read-only (write probe answered {write_status}); "
                                      "GC not run: did the restart take effect?")
