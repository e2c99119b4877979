"""The `dcgan` command line: train/sample/visualize/export end to end, and clear errors with non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dcgan.cli import main
from dcgan.images import decode_png


def test_console_script_lists_every_sub_command_without_importing_tensorflow():
    out = subprocess.run([sys.executable, "-c", "import sys; from dcgan.cli import build_parser; "
                          "p = build_parser(); p.print_help(); print('TF', 'tensorflow' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("train", "sample", "visualize", "export"):
        assert command in out.stdout
    assert "TF False" in out.stdout
    assert "warning" not in out.stderr, out.stderr


def test_train_sample_visualize_export_from_the_command_line(tmp_path, image_folder, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--data", image_folder, "--size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "16",
                 "--steps", "4", "--sample-every", "2", "--checkpoint-every", "2", "--out", run, "--no-progress"]) == 0
    assert "trained" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.join(run, "samples"))) == ["step_0000000.png", "step_0000002.png",
                                                                 "step_0000004.png"]

    grid = str(tmp_path / "grid.png")
    assert main(["sample", run, "--n", "9", "--seed", "7", "--out", grid, "--files", str(tmp_path / "faces")]) == 0
    record = json.load(open(str(tmp_path / "grid.json")))
    assert record["seeds"] == list(range(7, 16))
    assert Image.open(grid).size == (3 * 34 + 2, 3 * 34 + 2)
    faces = sorted(os.listdir(tmp_path / "faces"))
    assert len([f for f in faces if f.endswith(".png")]) == 9 and "seeds.json" in faces

    strip = str(tmp_path / "strip.png")
    assert main(["visualize", run, "--mode", "interpolate", "--seeds", "7,8", "--steps", "5", "--out", strip]) == 0
    pixels = decode_png(open(strip, "rb").read())
    assert pixels.shape == (34 + 2, 5 * 34 + 2, 3)
    first_face = decode_png(open(os.path.join(tmp_path / "faces", "seed_00000007.png"), "rb").read())
    np.testing.assert_array_equal(pixels[2:34, 2:34], first_face)  # the strip starts exactly at seed 7's face
    sweep = str(tmp_path / "sweep.png")
    assert main(["visualize", run, "--mode", "sweep", "--seeds", "1,2", "--dim", "3", "--steps", "4",
                 "--out", sweep]) == 0
    assert decode_png(open(sweep, "rb").read()).shape == (2 * 34 + 2, 4 * 34 + 2, 3)
    gif = str(tmp_path / "walk.gif")
    assert main(["visualize", run, "--mode", "gif", "--seeds", "1,2,3,4", "--steps", "3", "--keyframes", "2",
                 "--out", gif]) == 0
    assert Image.open(gif).n_frames == (2 + 1) * (3 - 1)  # (keyframes + 1) segments × (steps − 1) frames

    export = str(tmp_path / "models" / "dcgan" / "1")
    assert main(["export", run, export]) == 0
    assert os.path.isfile(os.path.join(export, "saved_model.pb"))
    assert main(["sample", export, "--n", "4", "--out", str(tmp_path / "from_export.png")]) == 0


@pytest.mark.parametrize("argv,message,code", [
    (["train", "--data", "/nonexistent/dir", "--out", "OUT"], "data path does not exist", 2),
    (["train", "--data", "DATA", "--size", "48", "--out", "OUT"], "size=48 is not supported", 2),
    (["train", "--data", "DATA", "--z-dim", "0", "--out", "OUT"], "z_dim=0 must be a positive integer", 2),
    (["train", "--data", "DATA"], "--out RUN_DIR is required", 2),
    (["train", "--resume", "TMP"], "is not a run directory", 1),
    (["train", "--resume", "TMP", "--size", "64"], "only --steps may change", 2),
    (["sample", "TMP"], "neither a run directory", 1),
    (["export", "TMP", "OUT"], "is not a run directory", 1),
])
def test_bad_arguments_print_a_clear_error_and_exit_non_zero(argv, message, code, tmp_path, image_folder, capsys):
    argv = [str(tmp_path) if a == "TMP" else image_folder if a == "DATA" else str(tmp_path / "out") if a == "OUT"
            else a for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_python_dash_m_reports_errors_of_plugin_commands_cleanly():
    # `python -m dcgan.cli` runs the module as __main__; plugin commands raise dcgan.cli.CommandError, which must
    # still be caught (a clear one-line error and exit 1, no traceback)
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dcgan.cli", "generate", "--server", "127.0.0.1:1", "--n", "1",
                             "--out", "/tmp/never-written.png"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "dcgan generate: error: 127.0.0.1:1" in result.stderr
