"""statistics.png: histograms of the numeric quality/face features from TFDV statistics, this drop (train) against
another dataset (the baseline drop, or this drop's eval split), drawn with PIL as the rest of the project draws."""

from __future__ import annotations

import io

from tensorflow_metadata.proto.v0 import statistics_pb2

PREFIXES = ("quality/", "face/")
PANEL_W, PANEL_H, PAD = 300, 150, 24
COLOURS = ((52, 101, 164, 255), (230, 120, 30, 120))  # this drop, the other (translucent, over it)


def numeric_histograms(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, list[tuple[float, ...]]]:
    """{feature: [(low, high, share of examples), ...]} of the standard histograms of the numeric features whose
    names start with PREFIXES."""
    out = {}
    for dataset in stats.datasets[:1]:
        for f in dataset.features:
            name = f.path.step[0] if f.path.step else f.name
            if not name.startswith(PREFIXES) or not f.HasField("num_stats"):
                continue
            for h in f.num_stats.histograms:
                if h.type == statistics_pb2.Histogram.STANDARD and h.buckets:
                    total = sum(b.sample_count for b in h.buckets) or 1.0
                    out[name] = [(b.low_value, b.high_value, b.sample_count / total) for b in h.buckets]
    return out


def _rebin(buckets: list[tuple[float, float, float]], lo: float, hi: float, n: int) -> list[float]:
    """Shares of `buckets` spread over `n` equal bins on [lo, hi] (uniform inside a bucket)."""
    out = [0.0] * n
    width = (hi - lo) / n or 1.0
    for low, high, share in buckets:
        if high <= low:
            out[min(n - 1, max(0, int((low - lo) / width)))] += share
            continue
        for i in range(n):
            a, b = lo + i * width, lo + (i + 1) * width
            overlap = max(0.0, min(b, high) - max(a, low))
            out[i] += share * overlap / (high - low)
    return out


def draw_statistics_png(this: statistics_pb2.DatasetFeatureStatisticsList,
                        other: statistics_pb2.DatasetFeatureStatisticsList | None,
                        this_name: str, other_name: str) -> bytes:
    """The PNG: one panel per feature, `this` in blue, `other` (if any) in orange over it."""
    from PIL import Image, ImageDraw

    mine = numeric_histograms(this)
    theirs = numeric_histograms(other) if other is not None else {}
    names = sorted(mine) or ["(no quality/face features in these statistics)"]
    cols = 2
    rows = (len(names) + cols - 1) // cols
    image = Image.new("RGB", (cols * (PANEL_W + PAD) + PAD, rows * (PANEL_H + 2 * PAD) + 2 * PAD), "white")
    draw = ImageDraw.Draw(image, "RGBA")
    draw.text((PAD, 6), f"blue: {this_name}" + (f"    orange: {other_name}" if theirs else ""), fill="black")
    for k, name in enumerate(names):
        x0 = PAD + (k % cols) * (PANEL_W + PAD)
        y0 = 2 * PAD + (k // cols) * (PANEL_H + 2 * PAD)
        draw.text((x0, y0 - 14), name, fill="black")
        draw.rectangle((x0, y0, x0 + PANEL_W, y0 + PANEL_H), outline=(160, 160, 160))
        series = [s for s in (mine.get(name), theirs.get(name)) if s]
        if not series:
            continue
        lo = min(b[0] for s in series for b in s)
        hi = max(b[1] for s in series for b in s)
        if hi <= lo:
            hi = lo + 1.0
        n = 20
        bins = [_rebin(s, lo, hi, n) for s in series]
        top = max(max(b) for b in bins) or 1.0
        for colour, shares in zip(COLOURS, bins):
            for i, share in enumerate(shares):
                h = share / top * (PANEL_H - 4)
                draw.rectangle((x0 + i * PANEL_W / n + 1, y0 + PANEL_H - h, x0 + (i + 1) * PANEL_W / n - 1,
                                y0 + PANEL_H), fill=colour)
        draw.text((x0, y0 + PANEL_H + 2), f"{lo:.4g}", fill=(90, 90, 90))
        draw.text((x0 + PANEL_W - 50, y0 + PANEL_H + 2), f"{hi:.4g}", fill=(90, 90, 90))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
