"""Per-image quality measurements of a training crop (brightness, contrast, saturation, sharpness and two categories):
the `quality/*` features of the example schema (`dcgan.schema`), which the data validation's statistics describe.

Pure numpy/OpenCV on one H×W×3 uint8 RGB image, exact float64 arithmetic (no BLAS, no threads that could reorder
sums), so the same crop gives the same numbers on every worker: they are written into byte-identical shards.
"""

from __future__ import annotations

import numpy as np

# Rec. 601 luma weights (R, G, B).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

COLOUR, GREYSCALE = "colour", "greyscale"
DARK, NORMAL, BRIGHT = "dark", "normal", "bright"
GREYSCALE_BELOW = 0.05  # mean saturation under which an image counts as greyscale
DARK_BELOW = 0.25  # mean brightness under which an image counts as dark
BRIGHT_ABOVE = 0.85  # mean brightness over which an image counts as bright


def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 601 Y of an H×W×3 uint8 RGB image, float64 in 0..255."""
    rgb = np.asarray(image, np.float64)
    return rgb[..., 0] * LUMA_WEIGHTS[0] + rgb[..., 1] * LUMA_WEIGHTS[1] + rgb[..., 2] * LUMA_WEIGHTS[2]


def saturation(image: np.ndarray) -> np.ndarray:
    """HSV saturation per pixel, (max − min) / max of R, G, B (0 for black), float64 in [0, 1]."""
    r, g, b = (np.asarray(image)[..., c] for c in range(3))
    # max/min of the integers, channel by channel: exact, and far cheaper than a reduction over a 3-long axis
    high = np.maximum(np.maximum(r, g), b).astype(np.float64)
    low = np.minimum(np.minimum(r, g), b).astype(np.float64)
    return np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)


def sharpness(y: np.ndarray) -> float:
    """Variance of the Laplacian (3×3, ksize 1, mirrored border) of a luma image in 0..255 units."""
    import cv2

    return float(cv2.Laplacian(np.ascontiguousarray(y, np.float64), cv2.CV_64F, ksize=1).var())


def colour_of(mean_saturation: float) -> str:
    return GREYSCALE if mean_saturation < GREYSCALE_BELOW else COLOUR


def exposure_of(brightness: float) -> str:
    if brightness < DARK_BELOW:
        return DARK
    return BRIGHT if brightness > BRIGHT_ABOVE else NORMAL


def image_features(crop: np.ndarray) -> dict[str, float | str]:
    """The quality features of one H×W×3 uint8 RGB crop, by name (the schema key is `quality/<name>`):
    brightness, contrast, saturation (floats in [0, 1]), sharpness (float ≥ 0), colour and exposure (text)."""
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {crop.shape} {crop.dtype}")
    y = luma(crop)
    brightness = float(y.mean()) / 255.0
    mean_saturation = float(saturation(crop).mean())
    return {
        "brightness": brightness,
        "contrast": float(y.std()) / 255.0,
        "saturation": mean_saturation,
        "sharpness": sharpness(y),
        "colour": colour_of(mean_saturation),
        "exposure": exposure_of(brightness),
    }
