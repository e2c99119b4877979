"""`dcgan studio --wait-for-model`: in Kubernetes the studio starts before the first push, when its model folder does
not exist yet. A real studio process started before the folder exists binds its port, says it waits, and serves once
a model is copied there (with a real model server started then); a bad path and a bounded wait that runs out are
clear errors."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from conftest import free_port
from serving_helpers import MODEL, add_version, running_server
from test_studio_api import fake_directions

from dcgan.directions import write_directions

pytestmark = pytest.mark.stack_neutral  # make test-current skips it (docs/development.md)


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _until(lines: queue.Queue, text: str, proc: subprocess.Popen, seen: list[str]) -> str:
    while True:
        try:
            line = lines.get(timeout=600)
        except queue.Empty:
            raise AssertionError(f"no line with {text!r} within 600 s; output so far: {seen}") from None
        if line is None:
            raise AssertionError(f"studio exited ({proc.poll()}) before printing {text!r}: {seen}")
        seen.append(line)
        if text in line:
            return line


def test_studio_started_before_its_model_folder_waits_then_serves(tmp_path, tiny_saved_model):
    base = str(tmp_path / "models" / MODEL)
    grpc_port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "dcgan.cli", "studio", "--server", f"127.0.0.1:{grpc_port}",
                             "--port", "0", "--model-base-path", base, "--wait-for-model", "forever"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        bound = _until(lines, "studio port", proc, seen)
        port = int(bound.split()[2].rsplit(":", 1)[1])
        waiting = _until(lines, "waiting for --model-base-path", proc, seen)
        assert base in waiting and "forever" in waiting
        assert proc.poll() is None, "the studio exited instead of waiting for its model folder"
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # the port is bound while it waits (a tcpSocket liveness probe passes)
        # The pipeline pushes: the first version appears (copied beside, renamed in), with its directions.
        version = add_version(tiny_saved_model, base, 1)
        write_directions(version, fake_directions(("Smiling",), seed=1))
        with running_server(model_base_path=base, model_name=MODEL, port=grpc_port):
            _until(lines, "found " + base, proc, seen)
            _until(lines, f"DCGAN studio at http://127.0.0.1:{port}/", proc, seen)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                config = http.get("/api/config")
                assert config.status_code == 200 and config.json()["directions"]["model_base_path"] == base
                directions = http.get("/api/directions").json()
                assert directions["available"] is True and directions["version"] == 1, directions
            proc.send_signal(signal.SIGTERM)
            _until(lines, "Studio stopped.", proc, seen)
            assert proc.wait(timeout=120) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_studio_wait_errors_are_clear(tmp_path, capsys):
    from dcgan.cli import main

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert main(["studio", "--port", "0", "--model-base-path", str(not_a_folder), "--wait-for-model", "60"]) == 2
    assert f"--model-base-path {str(not_a_folder)!r} is not a directory" in capsys.readouterr().err
    missing = str(tmp_path / "never")
    assert main(["studio", "--port", "0", "--model-base-path", missing, "--wait-for-model", "0.3"]) == 1
    err = capsys.readouterr().err
    assert f"waiting for --model-base-path {missing}" in err
    assert f"--model-base-path {missing} did not appear within 0.3 s" in err
    assert main(["studio", "--port", "0", "--model-base-path", missing]) == 2  # no wait asked: fails at once
    assert f"--model-base-path {missing!r} is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_flag:  # argparse's usage error
        main(["studio", "--wait-for-model", "soon"])
    assert bad_flag.value.code == 2
    assert "expected seconds >= 0 or 'forever'" in capsys.readouterr().err
