"""`dcgan visualize` / `dcgan sample` refuse bad flag values with a usage error naming the flag (exit code 2, no
traceback), before any model is loaded; grid mode draws the seeds it is given."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dcgan import images as imlib
from dcgan import latent, visualize
from dcgan.cli import main
from dcgan.images import decode_png

BAD_FLAGS = [
    (["visualize", "RUN", "--mode", "grid", "--seeds", ""], "--seeds"),
    (["visualize", "RUN", "--mode", "grid", "--seeds", ",,"], "--seeds"),
    (["visualize", "RUN", "--seeds", "1,x"], "--seeds"),
    (["visualize", "RUN", "--seeds", str(2**64)], "--seeds"),
    (["visualize", "RUN", "--mode", "interpolate", "--seeds", "1,2,3"], "--seeds"),
    (["visualize", "RUN", "--mode", "gif", "--fps", "0"], "--fps"),
    (["visualize", "RUN", "--mode", "gif", "--fps", "-3"], "--fps"),
    (["visualize", "RUN", "--mode", "gif", "--fps", "101"], "--fps"),
    (["visualize", "RUN", "--mode", "gif", "--keyframes", "-1"], "--keyframes"),
    (["visualize", "RUN", "--steps", "1"], "--steps"),
    (["visualize", "RUN", "--steps", "zero"], "--steps"),
    (["visualize", "RUN", "--mode", "sweep", "--dim", "-1"], "--dim"),
    (["visualize", "RUN", "--mode", "sweep", "--low", "nan"], "--low"),
    (["visualize", "RUN", "--mode", "sweep", "--high", "inf"], "--high"),
    (["sample", "RUN", "--n", "0"], "--n"),
    (["sample", "RUN", "--cols", "0"], "--cols"),
    (["sample", "RUN", "--seed", "-1"], "--seed"),
]


@pytest.mark.parametrize("argv,flag", BAD_FLAGS, ids=[" ".join(a[2:]) or a[0] for a, _ in BAD_FLAGS])
def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(argv, flag, tmp_path, capsys):
    argv = [str(tmp_path / "no-run") if a == "RUN" else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert flag in err, err
    assert "Traceback" not in err and "neither a run directory" not in err, "checked before loading a model: " + err


def test_grid_mode_draws_exactly_the_seeds_given(tiny_run, tmp_path):
    out = str(tmp_path / "grid.png")
    assert main(["visualize", tiny_run, "--mode", "grid", "--seeds", "5,3,11", "--out", out]) == 0
    record = json.load(open(tmp_path / "grid.json"))
    assert record["seeds"] == [5, 3, 11], "the grid must show the seeds asked for, in order"
    sampler = visualize.load_sampler(tiny_run)
    expected = imlib.make_grid(imlib.to_uint8(sampler(latent.z_from_seeds([5, 3, 11], sampler.z_dim))))
    np.testing.assert_array_equal(decode_png(open(out, "rb").read()), expected)
