"""The model server on an object store: `dcgan serve` (a subprocess, as deployed) reads its versions from an
`s3://` base path on a real S3 server on loopback (moto), hot-loads a version uploaded later (a partial upload is
never served), ends cleanly after SIGTERM although it used tensorflow-io's S3 filesystem, and reports an unreachable
store clearly."""

from __future__ import annotations

import os
import signal

import pytest
from conftest import free_port
from serving_helpers import MODEL, Stubs, wait_for, z_batch
from test_serving_cli import ServerProcess


class ServeProcess(ServerProcess):
    """`dcgan serve` through the installed console script (dcgan.cli:entry, which ends S3 users via exit_process)."""

    def __init__(self, args: list[str]):
        import subprocess
        import sys
        import threading

        script = os.path.join(os.path.dirname(sys.executable), "dcgan")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen([script, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _upload(client, bucket: str, source: str, prefix: str, last: str = "saved_model.pb") -> None:
    """Upload a SavedModel folder file by file, `last` at the end (like a copy in progress)."""
    files = []
    for folder, _, names in os.walk(source):
        for name in names:
            full = os.path.join(folder, name)
            files.append((os.path.relpath(full, source), full))
    files.sort(key=lambda f: f[0] == last)
    for rel, full in files:
        client.upload_file(full, bucket, f"{prefix}/{rel}")


def _version(stubs: Stubs) -> int:
    return stubs.predict({"z": z_batch(1)}).model_spec.version.value


def test_dcgan_serve_loads_from_s3_and_hot_loads_a_version_uploaded_later(s3_env, tiny_saved_model):
    bucket = s3_env.create_bucket("serving-models")[len("s3://"):]
    client = s3_env.client()
    _upload(client, bucket, tiny_saved_model, f"models/{MODEL}/1")
    port = free_port()
    server = ServeProcess(["serve", f"--port={port}", "--rest_api_port=0", f"--model_name={MODEL}",
                            f"--model_base_path=s3://{bucket}/models/{MODEL}", "--file_system_poll_wait_seconds=0.5"])
    try:
        server.wait_for_line("Serving models", timeout=120)
        stubs = Stubs(f"127.0.0.1:{port}")
        assert _version(stubs) == 1
        # Version 2 arrives file by file; until saved_model.pb (uploaded last) is there it is not a version.
        _upload(client, bucket, tiny_saved_model, f"models/{MODEL}/2")
        wait_for(lambda: _version(stubs) == 2, timeout=60, what="version 2 hot-loaded from S3")
        stubs.close()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0, server.output()
        assert "pure virtual method" not in server.output()
    finally:
        server.kill()


def test_an_unreachable_store_is_a_clear_error_naming_the_url_and_the_endpoint(s3_env, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the AWS SDK's own retries (10 by default): keep the test short
    server = ServeProcess(["serve", f"--port={free_port()}", "--rest_api_port=0", f"--model_name={MODEL}",
                            "--model_base_path=s3://nowhere-bucket/models/dcgan"])
    try:
        code = server.proc.wait(timeout=240)
        server.reader.join(5)
        output = server.output()
        assert code != 0, output
        assert "s3://nowhere-bucket/models/dcgan" in output and f"AWS_ENDPOINT_URL={dead}" in output, output
        assert "Traceback" not in output, output
    finally:
        server.kill()


