"""Speed checks that used to be timed assertions in tests (tests assert behaviour; speed is measured here).

One run, printed as a table (and written as JSON with --out): each row is a measured time, the budget the old test
asserted, and their ratio (< 1 = within budget), plus a reference time measured in the same run where one makes the
number meaningful on a loaded machine:

1. avatar rendering (was tests/test_avatars.py): ms per 64x64 avatar of `avatars.avatar_array(96, seed=0)`;
2. the pixel-bomb guard (was tests/test_images.py): refusing a PNG header that claims 20000x20000 pixels, against
   decoding an ordinary 1024x1024 PNG;
3. `dcgan fid --help` in a fresh interpreter (was tests/test_metrics_evaluate.py), against `import tensorflow`;
4. the studio's 503 for a model server that is not running (was tests/test_studio_api.py).

    .venv/bin/python bench/behaviour_timings.py --out bench-behaviour.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

import numpy as np  # noqa: E402


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def avatar_render() -> dict:
    from dcgan import avatars

    seconds = _best_of(lambda: avatars.avatar_array(96, seed=0, size=64), 3) / 96
    return {"name": "avatar render, per 64x64 avatar", "seconds": seconds, "budget_s": 0.1}


def pixel_bomb() -> dict:
    from PIL import Image
    from test_images import png_header_only

    from dcgan import images as imlib

    bomb = png_header_only(20000, 20000)

    def refuse() -> None:
        try:
            imlib.decode_image(bomb)
        except imlib.ImageRejected:
            return
        raise AssertionError("the pixel bomb was not refused")

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), np.uint8)).save(buf, "PNG")
    ordinary = buf.getvalue()
    return {"name": "pixel bomb (20000x20000 header) refused", "seconds": _best_of(refuse, 20), "budget_s": 0.5,
            "reference": "decode an ordinary 1024x1024 PNG",
            "reference_s": _best_of(lambda: imlib.decode_image(ordinary, max_pixels=1 << 21), 5)}


def cli_help() -> dict:
    def run(*args: str) -> None:
        out = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True, cwd=REPO)
        assert args[0] == "-c" or "PATH_A" in out.stdout, out.stdout + out.stderr

    return {"name": "`dcgan fid --help` in a fresh interpreter",
            "seconds": _best_of(lambda: run("-m", "dcgan.cli", "fid", "--help"), 3),
            "budget_s": 60.0, "reference": "import tensorflow",
            "reference_s": _best_of(lambda: run("-c", "import tensorflow"), 1)}


def studio_dead_server() -> dict:
    import httpx

    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with StudioServer(StudioConfig(server=dead, port=0)) as studio, httpx.Client(base_url=studio.url,
                                                                                 timeout=60) as http:
        def ask() -> None:
            assert http.post("/api/generate", json={"n": 2}).status_code == 503

        ask()  # the first request also starts the channel
        return {"name": "studio: 503 for a model server that is down", "seconds": _best_of(ask, 5), "budget_s": 5.0,
                "reference": "GET /api/config", "reference_s": _best_of(lambda: http.get("/api/config"), 5)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    from dcgan.runtime import machine_line

    print(machine_line(), flush=True)
    results: dict = {"machine": machine_line(), "loadavg_before": os.getloadavg(), "cpus": os.cpu_count(), "rows": []}
    for measure in (avatar_render, pixel_bomb, cli_help, studio_dead_server):
        row = measure()
        row["ratio_to_budget"] = row["seconds"] / row["budget_s"]
        if "reference_s" in row:
            row["ratio_to_reference"] = row["seconds"] / row["reference_s"]
        results["rows"].append(row)
    results["loadavg_after"] = os.getloadavg()

    print(f"{'measurement':46s} {'time':>10s} {'budget':>8s} {'/budget':>8s}   reference (same run)")
    for r in results["rows"]:
        ref = (f"{r['ratio_to_reference']:.3g}x of {r['reference']} ({r['reference_s'] * 1000:.1f} ms)"
               if "reference" in r else "")
        print(f"{r['name']:46s} {r['seconds'] * 1000:8.2f}ms {r['budget_s']:7.1f}s {r['ratio_to_budget']:8.2g}   {ref}")
    before, after = results["loadavg_before"], results["loadavg_after"]
    print(f"load average before {before[0]:.2f}, after {after[0]:.2f} ({results['cpus']} CPUs)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
