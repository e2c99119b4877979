"""End to end through the command line: `dcgan serve` in a subprocess (TF Serving flags, free loopback ports), then
`dcgan generate`, `dcgan models status` and `dcgan rollout ...` against it, and a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import REPO, dcgan_command, free_port
from serving_helpers import MODEL, add_version, wait_for, write_config


class ServerProcess:
    def __init__(self, args: list[str]):
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(dcgan_command() + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=REPO, env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None:
                raise AssertionError(f"dcgan serve exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} after {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _main(*argv: str) -> int:
    from dcgan.cli import main

    return main(list(argv))


def test_dcgan_serve_generate_status_rollout_and_sigterm(tmp_path, tiny_saved_model, artifacts_dir, capsys):
    base = str(tmp_path / "models" / MODEL)
    add_version(tiny_saved_model, base, 1)
    config = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base}])
    grpc_port, rest_port = free_port(), free_port()
    target = f"127.0.0.1:{grpc_port}"
    server = ServerProcess(["serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
                            f"--model_config_file={config}", "--file_system_poll_wait_seconds=0.3",
                            "--model_config_file_poll_wait_seconds", "1", "--enable_model_warmup=false"])
    try:
        server.wait_for_line("Serving models: dcgan", timeout=120)
        assert f"Running gRPC ModelServer at 127.0.0.1:{grpc_port}" in server.output()
        status = httpx.get(f"http://127.0.0.1:{rest_port}/v1/models/{MODEL}", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"

        grid = tmp_path / "grid.png"
        assert _main("generate", "--server", target, "--n", "4", "--seed", "7", "--out", str(grid)) == 0
        record = json.loads((tmp_path / "grid.json").read_text())
        assert (record["version"], record["seeds"], len(record["z"])) == (1, [7, 8, 9, 10], 4)
        from dcgan.images import decode_png

        assert decode_png(grid.read_bytes()).ndim == 3
        shutil.copy(grid, os.path.join(artifacts_dir, "serving_generate_grid.png"))

        # Hot-load version 2, watch it with `models status`, canary version 1 against it, promote, roll back.
        add_version(tiny_saved_model, base, 2)
        capsys.readouterr()

        def version_2_available():
            _main("models", "status", "--server", target, "--json")
            report = json.loads(capsys.readouterr().out)
            return {v["version"]: v["state"] for v in report[MODEL]} == {2: "AVAILABLE", 1: "END"}

        wait_for(version_2_available, timeout=30, interval=0.3, what="version 2 hot-loaded")
        assert _main("rollout", "canary", "1", "--config", config, "--server", target) == 0
        out = capsys.readouterr().out
        assert "stable    → version 2 (AVAILABLE)" in out and "canary    → version 1 (AVAILABLE)" in out
        assert _main("generate", "--server", target, "--n", "2", "--label", "canary", "--out", str(grid)) == 0
        assert json.loads((tmp_path / "grid.json").read_text())["version"] == 1
        assert _main("rollout", "promote", "--config", config, "--server", target) == 0
        assert _main("rollout", "rollback", "--config", config, "--server", target) == 0
        capsys.readouterr()
        assert _main("rollout", "status", "--config", config, "--server", target, "--json") == 0
        assert json.loads(capsys.readouterr().out)["labels"] == {"stable": 2}
        assert _main("models", "status", "--server", target, "--config", config) == 0
        assert "version 2" in capsys.readouterr().out
        assert _main("rollout", "promote", "--config", config, "--server", target) == 1  # no canary: refused
        assert "no 'canary' label to promote" in capsys.readouterr().err

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0, server.output()
        server.reader.join(5)
        assert "Server stopped." in server.output()
    finally:
        server.kill()


def test_dcgan_serve_reports_configuration_errors_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { name: 'dcgan' base_path: ")
    assert _main("serve", f"--model_config_file={bad}", "--port=0", f"--rest_api_port={free_port()}") == 2
    assert "Invalid protobuf file" in capsys.readouterr().err
    assert _main("serve", "--port", str(free_port())) == 2
    assert "--model_base_path" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["rollout", "canary", "--help"]])
def test_cli_help_does_not_import_tensorflow(argv):
    code = (f"import sys\nfrom dcgan.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'grpc' not in sys.modules, 'heavy import'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: dcgan" in result.stdout
