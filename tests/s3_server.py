"""A real S3 HTTP server on loopback for the object-store tests: moto's standalone server (`moto_server`), started
as a subprocess on a free 127.0.0.1 port. Clients are pointed at it the standard way, by AWS_ENDPOINT_URL (boto3 and
the AWS CLI read it; dcgan.fileio derives tensorflow-io's S3_* variables from it), with dummy credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ports import free_port


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    @property
    def environment(self) -> dict[str, str]:
        """What a client process needs to reach this server (set these, or pass them to subprocesses)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        env = self.environment
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=env["AWS_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self, name: str) -> str:
        """Creates the bucket (names need ≥ 3 characters) and returns 's3://name'."""
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def s3_server(timeout: float = 30.0) -> Iterator[S3Server]:
    """Starts moto_server on 127.0.0.1, waits until it answers, stops it on exit."""
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if exe is None:
        raise RuntimeError("moto_server not found: the test environment installs moto[server] (pyproject 'test' extra)")
    port = free_port()
    process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    server = S3Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode} before answering on port {port}")
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {server.endpoint} within {timeout} s") from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()
