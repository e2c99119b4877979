"""Ingest throughput: the Beam pipeline at 1 and 2 workers vs a single-process loop doing the same per-image work.

Two workloads, measured in one run:
  * avatars — `avatars:N:SEED` (render SVG → 64×64 RGB → PNG → tf.Example → GZIP TFRecord)
  * align   — a folder of JPEG photos (read → decode → MTCNN on a 256 px canvas, batches of 16 → 5-point alignment
              → 64×64 → PNG → tf.Example → GZIP TFRecord); the photos are made from the faces scikit-image ships
              (astronaut under random rotations/scales/colour, LFW faces pasted into scenes, some face-less scenes)

Engines: `loop` (one Python process, the same dcgan functions, TF free to use every core), Beam DirectRunner
in-process (1 worker), DirectRunner multi_processing with W worker processes, multi_threading with W threads, and
with --dask the Dask runner on a LocalCluster of W processes, twice (the 2nd run finds TF imported in the workers).
Two rates per Beam run: `wall` (the driver's whole run, worker start-up included: each worker process imports
TensorFlow and Beam, ~10 s) and `steady` (items / processing window, first batch started → last batch done on any
worker, from Beam metrics). The loop pays no start-up inside its timing.

    .venv/bin/python bench/ingest_throughput.py                    # defaults: 2000 photos, 3000 avatars, 2 workers
    .venv/bin/python bench/ingest_throughput.py --photos 400 --avatars 600   # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402


def make_photos(folder: str, n: int, seed: int = 0) -> str:
    """n JPEG photos (240–480 px): 70% astronaut variants, 20% LFW faces in scenes, 10% scenes without a face."""
    import cv2
    from PIL import Image
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    astronaut, lfw = data.astronaut(), (data.lfw_subset()[:100] * 255).round().astype(np.uint8)
    scenes = [data.coffee(), data.chelsea(), data.rocket()]
    for i in range(n):
        u = rng.random()
        if u < 0.7:
            m = cv2.getRotationMatrix2D((256 + rng.uniform(-40, 40), 256 + rng.uniform(-40, 40)), rng.uniform(-25, 25),
                                        rng.uniform(0.55, 1.0))
            img = cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REFLECT_101)
            side = int(rng.integers(240, 480))
            img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        elif u < 0.9:
            s = int(rng.integers(90, 150))
            face = cv2.resize(np.dstack([lfw[int(rng.integers(100))]] * 3), (s, s), interpolation=cv2.INTER_CUBIC)
            img = cv2.resize(scenes[int(rng.integers(3))], (400, 300))
            y, x = int(rng.integers(0, 300 - s)), int(rng.integers(0, 400 - s))
            img[y:y + s, x:x + s] = face
        else:
            img = cv2.resize(scenes[int(rng.integers(3))], (int(rng.integers(240, 440)), int(rng.integers(220, 330))))
        img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2, 3), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"photo_{i:05d}.jpg"), quality=90)
    return folder


def loop(config, out_dir: str, detection_batch: int) -> tuple[int, float]:
    """The same per-item work as the pipeline, in one process, without Beam. Returns (written, seconds)."""
    from dcgan.runtime import enable_onednn

    enable_onednn()  # before TensorFlow: oneDNN on every x86 CPU
    import tensorflow as tf

    from components.ingest import sources
    from dcgan import avatars, faces, schema
    from dcgan import images as imlib

    source = sources.parse_source(config.source)
    items = source.items()
    crop = config.crop_config()
    detector = faces.get_detector(crop.detect_size) if crop.mode == faces.ALIGN and not source.is_avatars else None
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    start = time.perf_counter()
    options = tf.io.TFRecordOptions(compression_type=schema.COMPRESSION)
    with tf.io.TFRecordWriter(os.path.join(out_dir, "loop" + schema.FILE_SUFFIX), options=options) as writer:
        def emit(item_id, image, attributes):
            png = imlib.encode_png(image)
            example = schema.make_example(png, config.size, config.size, item_id, source.spec, attributes,
                                          hashlib.sha256(png).hexdigest())
            writer.write(example.SerializeToString(deterministic=True))

        for b in range(0, len(items), detection_batch):
            batch, decoded = items[b:b + detection_batch], []
            for item in batch:
                if item.kind == "avatar":
                    image, attributes = avatars.generate_avatar(source.avatar_seed, item.index, config.size)
                    emit(item.id, image, attributes)
                    written += 1
                    continue
                try:
                    decoded.append((item, imlib.decode_image(sources.read_item(item), max_pixels=config.max_pixels)))
                except imlib.ImageRejected:
                    pass
            crops = faces.crop_images([d[1] for d in decoded], crop, detector) if decoded else []
            for (item, _), result in zip(decoded, crops, strict=True):
                if not isinstance(result, imlib.ImageRejected):
                    emit(item.id, result, {})
                    written += 1
    return written, time.perf_counter() - start


def beam_run(config, out_dir: str, args: list[str]):
    from components.ingest.pipeline import run_ingest

    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    report = run_ingest(config, out_dir, beam_pipeline_args=args)
    return report, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000, help="photos for the align workload (0 = skip)")
    parser.add_argument("--avatars", type=int, default=3000, help="avatars for the avatar workload (0 = skip)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--no-threads", action="store_true", help="skip the multi_threading rows")
    parser.add_argument("--dask", action="store_true",
                        help="add Dask rows: a LocalCluster of W processes, a first (cold) and a second (warm) run")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (photos are reused between runs) instead of /tmp")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from components.ingest.config import IngestConfig
    from dcgan import faces
    from dcgan.runtime import machine_line

    print(machine_line(), flush=True)

    work = args.keep or tempfile.mkdtemp(prefix="ingest-bench-")
    w = args.workers
    workloads = []
    if args.avatars:
        workloads.append(("avatars", IngestConfig(source=f"avatars:{args.avatars}:0", size=args.size)))
    if args.photos:
        folder = os.path.join(work, f"photos-{args.photos}")
        if not os.path.isdir(folder) or len(os.listdir(folder)) != args.photos:
            t = time.perf_counter()
            make_photos(folder, args.photos)
            print(f"made {args.photos} photos in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        workloads.append(("align", IngestConfig(source=folder, size=args.size, mode=faces.ALIGN)))

    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}  "
          f"cores: {len(os.sched_getaffinity(0))}  python {platform.python_version()}", file=sys.stderr)
    rows = []
    for name, config in workloads:
        n_items = args.photos if name == "align" else args.avatars
        print(f"[{name}] loop ...", file=sys.stderr)
        if name == "align":  # load and trace the detector once, outside every timing (Beam in-process reuses it)
            faces.get_detector(config.detect_size).detect([np.zeros((64, 64, 3), np.uint8)] * 2)
        written, seconds = loop(config, os.path.join(work, f"{name}-loop"), config.detection_batch)
        base = n_items / seconds
        rows.append((name, "loop (1 process, batch 16)", n_items, written, seconds, base, None, None, base))
        engines = [("Beam Direct in-process (1 worker)", ["--direct_running_mode=in_memory"]),
                   (f"Beam Direct multi_processing ({w} workers)",
                    [f"--direct_num_workers={w}", "--direct_running_mode=multi_processing"])]
        if not args.no_threads:
            engines.append((f"Beam Direct multi_threading ({w} threads)",
                            [f"--direct_num_workers={w}", "--direct_running_mode=multi_threading"]))
        for label, beam_args in engines:
            print(f"[{name}] {label} ...", file=sys.stderr)
            report, wall = beam_run(config, os.path.join(work, f"{name}-beam"), beam_args)
            steady = report.processing_seconds
            rows.append((name, label, n_items, report.written_total, wall, n_items / wall, steady,
                         n_items / steady if steady else None, base))
        if args.dask:
            from components.ingest.cli import local_dask_cluster

            with local_dask_cluster(w) as cluster:
                dask_args = ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
                             f"--dask_client_address={cluster.scheduler_address}", f"--dask_npartitions={4 * w}"]
                dask_config = IngestConfig(**{**config.to_dict(), "worker_threads": max(1, os.cpu_count() // w)})
                for label in (f"Beam Dask LocalCluster ({w} workers), 1st run", f"Beam Dask ({w} workers), 2nd run"):
                    print(f"[{name}] {label} ...", file=sys.stderr)
                    report, wall = beam_run(dask_config, os.path.join(work, f"{name}-dask"), dask_args)
                    rows.append((name, label, n_items, report.written_total, wall, n_items / wall, None, None, base))

    print()
    print(f"{'workload':<8} {'engine':<42} {'items':>6} {'kept':>6} {'wall s':>7} {'img/s':>7} {'x loop':>6} "
          f"{'steady s':>8} {'img/s':>7} {'x loop':>6}")
    for name, label, n, kept, wall, rate, steady, steady_rate, base in rows:
        steady_cols = (f"{steady:>8.1f} {steady_rate:>7.1f} {steady_rate / base:>6.2f}" if steady
                       else f"{'':>8} {'':>7} {'':>6}")
        print(f"{name:<8} {label:<42} {n:>6} {kept:>6} {wall:>7.1f} {rate:>7.1f} {rate / base:>6.2f} {steady_cols}")
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min); "
          f"cores: {len(os.sched_getaffinity(0))}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
