"""carpedm20/DCGAN-tensorflow's `--visualize` options 2-4 by name: `sweep-gif` writes one GIF per z dimension with one
frame per sweep value (from the seeds' z, or from z = 0), `merged-gif` one GIF of a 10×10 grid swept forth and back."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from dcgan import images as imlib
from dcgan import visualize
from dcgan.cli import main


def frames(path: str) -> list[np.ndarray]:
    with Image.open(path) as gif:
        out = []
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append(np.asarray(gif.convert("RGB")))
        return out


@pytest.fixture(scope="module")
def sampler(tiny_run):
    return visualize.load_sampler(tiny_run)


def test_sweep_gif_writes_one_gif_per_dimension_with_one_frame_per_step(tiny_run, tmp_path, capsys):
    out = tmp_path / "sweeps"
    assert main(["visualize", tiny_run, "--mode", "sweep-gif", "--dims", "0,5,99", "--steps", "6", "--seeds", "1,2",
                 "--out", str(out)]) == 0
    assert "carpedm20 option 2" in capsys.readouterr().out
    names = sorted(n for n in os.listdir(out) if n.endswith(".gif"))
    assert names == ["sweep_dim_000.gif", "sweep_dim_005.gif", "sweep_dim_099.gif"]
    record = json.load(open(out / "sweep_gifs.json"))
    assert record["range"] == [-1.0, 1.0] and record["base"] == [1, 2] and record["frames"] == 6
    first = frames(str(out / "sweep_dim_005.gif"))
    assert len(first) == 6
    assert first[0].shape == imlib.make_grid(np.zeros((2, 32, 32, 3), np.uint8)).shape, "two faces side by side"


def test_sweep_gif_defaults_to_every_dimension_and_zero_base_is_option_3(sampler, tmp_path):
    record = visualize.sweep_gifs(sampler, None, None, 3, str(tmp_path))
    assert len(record["files"]) == sampler.z_dim == 100 and record["base"] == "zero"
    # Frame k of dimension d is G(z) with z = 0 except z[d] = linspace(-1, 1, 3)[k].
    z = np.zeros((1, 100), np.float32)
    z[0, 7] = 1.0
    expected = imlib.to_uint8(sampler(z))[0]
    got = frames(record["files"][7])[-1]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 8, "GIF palette quantisation only"


def test_merged_gif_is_a_10x10_grid_swept_forth_and_back(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "merged.gif")
    assert main(["visualize", tiny_run, "--mode", "merged-gif", "--zero-base", "--steps", "4", "--out", out]) == 0
    assert "carpedm20 option 4" in capsys.readouterr().out
    got = frames(out)
    assert len(got) == 6, "4 steps forward, 2 back (the turning points are not repeated)"
    assert got[0].shape == imlib.make_grid(np.zeros((100, 32, 32, 3), np.uint8), ncols=10).shape
    np.testing.assert_array_equal(got[1], got[-1])
    record = json.load(open(tmp_path / "merged.json"))
    assert record["grid"] == [10, 10] and record["carpedm20_option"] == "4" and record["base"] == "zero"


@pytest.mark.parametrize("argv,flag", [
    (["--mode", "sweep-gif", "--dims", "x"], "--dims"),
    (["--mode", "sweep-gif", "--dims", "-1"], "--dims"),
    (["--mode", "merged-gif", "--steps", "1"], "--steps"),
])
def test_bad_gif_flags_are_usage_errors(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["visualize", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and flag in capsys.readouterr().err


def test_a_dimension_outside_z_is_refused_by_name(tiny_run, tmp_path, capsys):
    assert main(["visualize", tiny_run, "--mode", "sweep-gif", "--dims", "100", "--out", str(tmp_path)]) == 2
    assert "--dims 100 is outside 0..99" in capsys.readouterr().err
