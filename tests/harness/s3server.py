"""A real S3-compatible server for tests: moto's server mode as its own process.

It listens on 0.0.0.0:<port> in the root network namespace, so gcops reaches
it at 127.0.0.1 and a test host at the root end of its veth (10.231.<n>.1).
With `auth=True` requests must be signed with an IAM access key it created
(moto checks SigV4 then), so wrong credentials are refused as S3 would.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .netns import HarnessError

ROOT_KEY = ("testing", "testing")      # accepted while auth is off (setup)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = ROOT_KEY
    return env


@dataclass
class S3Server:
    port: int
    proc: subprocess.Popen
    log: Path
    access_key: str = ROOT_KEY[0]
    secret_key: str = field(default=ROOT_KEY[1], repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, host) -> str:
        """The endpoint as a test host reaches it."""
        return f"http://{host.root_address}:{self.port}"

    def client(self, access_key: str | None = None, secret_key: str | None = None, endpoint: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=endpoint or self.url, region_name="us-east-1",
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                                          retries={"mode": "standard", "max_attempts": 5}))

    def enable_auth(self) -> None:
        """Create an IAM user with full rights, use its key from now on, and make moto check signatures."""
        import boto3

        iam = boto3.client("iam", endpoint_url=self.url, region_name="us-east-1",
                           aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1])
        iam.create_user(UserName="registry")
        policy = iam.create_policy(PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        iam.attach_user_policy(UserName="registry", PolicyArn=policy["Policy"]["Arn"])
        key = iam.create_access_key(UserName="registry")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        req = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def bucket_bytes(self, bucket: str, prefix: str = "") -> tuple[int, set[str]]:
        """(sum of sizes, keys) under prefix: the test's own sequential walk."""
        total, keys = 0, set()
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                total += obj["Size"]
                keys.add(obj["Key"])
        return total, keys

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_s3_server(log_dir: Path, *, auth: bool = False, port: int | None = None) -> S3Server:
    """Start `moto_server` on 0.0.0.0 and wait until it answers."""
    port = port or _free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    argv = [exe] if exe else [sys.executable, "-m", "moto.server"]
    log = Path(log_dir) / f"moto-{port}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv + ["-H", "0.0.0.0", "-p", str(port)], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, env=_clean_env(), start_new_session=True)
    server = S3Server(port=port, proc=proc, log=log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise HarnessError(f"moto_server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/", timeout=1) as resp:
                resp.read()
            break
        except urllib.error.HTTPError:
            break                      # it answers HTTP: up
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise HarnessError(f"moto_server did not answer on port {port} within 30s")
            time.sleep(0.05)
    if auth:
        try:
            server.enable_auth()
        except BaseException:
            server.stop()       # never leave a server behind
            raise
    return server


def s3_registry_config(server: S3Server, host, *, bucket: str, rootdirectory: str = "/registry",
                       access_key: str | None = None, secret_key: str | None = None) -> str:
    """A registry config.yml storing into `bucket` on `server` (reached from `host`)."""
    return (
        "# Registry on S3-compatible storage (gcops test host).\n"
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "  formatter: text\n"
        "storage:\n"
        "  s3:\n"
        f"    accesskey: {access_key or server.access_key}\n"
        f"    secretkey: {secret_key or server.secret_key}\n"
        "    region: us-east-1\n"
        f"    regionendpoint: {server.url_for(host)}\n"
        f"    bucket: {bucket}\n"
        f"    rootdirectory: {rootdirectory}\n"
        "    secure: false\n"
        "    v4auth: true\n"
        "  delete:\n"
        "    enabled: true\n"
        # blobs are served through the registry: moto's signature check does not take presigned URLs
        "  redirect:\n"
        "    disable: true\n"
        "  cache:\n"
        "    blobdescriptor: inmemory\n"
        "http:\n"
        "  addr: 127.0.0.1:5000\n"
        "health:\n"
        "  storagedriver:\n"
        "    enabled: false\n"
    )
