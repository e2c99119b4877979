"""`dcgan ingest SOURCE OUT`: run the ingest Beam pipeline without TFX (registered through the `dcgan.commands`
entry point; importing this module is cheap — Beam and TensorFlow load only when the command runs)."""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_USAGE = 2

_DESCRIPTION = """\
Ingest face images into TFRecords (OUT/Split-train, OUT/Split-eval, and OUT/Split-inputs: each input's outcome;
the example schema of dcgan.schema) and write an ingest report (OUT/ingest_report.json, OUT/ingest_report.txt,
OUT/preview.png).

SOURCE: a folder (recursive), a .zip (CelebA layout; list_attr_celeba.txt labels when found), a glob such as
'photos/**/*.jpg' (quote it), one image file, or avatars:N:SEED (N built-in avatar faces).

examples:
  dcgan ingest avatars:2000:0 data/avatars
  dcgan ingest ~/photos data/faces --align --size 64
  dcgan ingest img_align_celeba.zip data/celeba --crop-size 108 --workers 2
  dcgan ingest ~/photos data/faces --align --runner dask --workers 4
  dcgan ingest ~/photos data/faces --beam-arg=--runner=DataflowRunner --beam-arg=--project=my-project ...
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="ingest images (folder, zip, glob, avatars:N:SEED) into TFRecords",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="folder, .zip, glob, image file or avatars:N:SEED")
    p.add_argument("out", help="output folder (Examples layout + report)")
    p.add_argument("--size", type=int, default=64, help="output image side in pixels (default 64)")
    crop = p.add_argument_group("cropping")
    modes = crop.add_mutually_exclusive_group()
    modes.add_argument("--align", dest="mode", action="store_const", const="align",
                       help="real photos: detect the face (MTCNN) and align it on 5 landmarks (= --mode align)")
    modes.add_argument("--mode", choices=("align", "center-crop", "none"), default="center-crop",
                       help="align | center-crop (default; pre-aligned sets like CelebA) | none (resize only)")
    crop.add_argument("--crop-size", type=int, help="center-crop: central square side before resizing "
                                                    "(108 for CelebA img_align; default: the largest square)")
    crop.add_argument("--margin", type=float, default=0.15,
                      help="align: border around the landmark template, fraction of its side (default 0.15)")
    crop.add_argument("--face", choices=("largest", "confident", "central"), default="largest",
                      help="align: which face when several (default largest)")
    crop.add_argument("--min-confidence", type=float, default=0.9, help="align: detector score threshold")
    crop.add_argument("--min-face-size", type=int, default=32,
                      help="align: reject faces smaller than this many source pixels (default 32; 0 = off)")
    crop.add_argument("--detect-size", type=int, default=256,
                      help="align: detector canvas side; raise it to find small faces in big photos (default 256)")
    data = p.add_argument_group("dataset")
    data.add_argument("--eval-ratio", type=float, default=0.1, help="fraction in the eval split (default 0.1)")
    data.add_argument("--seed", type=int, default=0, help="salts the train/eval split (default 0)")
    data.add_argument("--max-pixels", type=int, default=64_000_000,
                      help="reject inputs with more pixels, from their header (default 64000000)")
    labels = data.add_mutually_exclusive_group()
    labels.add_argument("--attributes", metavar="FILE", help="CelebA-format attribute file (default: "
                                                            "list_attr_celeba.txt found next to the source)")
    labels.add_argument("--no-attributes", action="store_true", help="do not attach attribute labels")
    data.add_argument("--records-per-shard", type=int, default=10_000, help="examples per TFRecord file")
    data.add_argument("--preview", type=int, default=64, help="images in the preview grid (default 64)")
    run = p.add_argument_group("running (Apache Beam)")
    run.add_argument("--workers", type=int, default=1,
                     help="parallel worker processes: DirectRunner multi_processing, or Dask workers (default 1)")
    run.add_argument("--runner", choices=("direct", "dask"), default="direct",
                     help="direct (default) or dask (a local Dask cluster unless --dask-address)")
    run.add_argument("--dask-address", help="scheduler address of a running Dask cluster (with --runner dask)")
    run.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="extra Beam pipeline option, repeatable; write it with '=': --beam-arg=--runner=FlinkRunner")
    p.add_argument("--force", action="store_true", help="replace an earlier ingest output in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_ingest, mode="center-crop")


def _beam_args(args: argparse.Namespace, dask_address: str | None) -> list[str]:
    beam_args = list(args.beam_arg)
    if args.runner == "dask":
        beam_args += ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
                      f"--dask_client_address={dask_address}"]
        if not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in beam_args):
            # The Dask runner puts up to 128 elements (here: batches of 16 images) in one partition by default,
            # which would leave all but one worker idle on a few thousand images.
            beam_args.append(f"--dask_npartitions={4 * args.workers}")
    elif args.workers > 1:
        beam_args += [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing"]
    return beam_args


def local_dask_cluster(workers: int):
    """A local Dask cluster of `workers` single-threaded processes; scheduler, dashboard and workers listen on
    127.0.0.1 only (distributed's dashboard default is every interface)."""
    from distributed import LocalCluster

    # distributed logs its cluster chatter at INFO; keep it to the level the user asked for (default WARNING)
    logging.getLogger("distributed").setLevel(max(logging.getLogger().level, logging.WARNING))
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0")


def _cmd_ingest(args: argparse.Namespace) -> int:
    from dcgan.cli import CommandError, quiet_tensorflow

    quiet_tensorflow()
    if not args.quiet:
        logging.getLogger("components.ingest").setLevel(logging.INFO)
    if args.workers < 1:
        raise CommandError("--workers must be at least 1", EXIT_USAGE)
    if args.dask_address and args.runner != "dask":
        raise CommandError("--dask-address needs --runner dask", EXIT_USAGE)

    from components.ingest.config import IngestConfig, IngestError

    config = IngestConfig(
        source=args.source, size=args.size, mode=args.mode, crop_size=args.crop_size, margin=args.margin,
        face=args.face, min_confidence=args.min_confidence, min_face_size=args.min_face_size,
        detect_size=args.detect_size, eval_ratio=args.eval_ratio, seed=args.seed, max_pixels=args.max_pixels,
        attributes_file="" if args.no_attributes else args.attributes, records_per_shard=args.records_per_shard,
        preview_count=args.preview)
    try:
        config.validate()
    except IngestError as e:
        raise CommandError(str(e), EXIT_USAGE) from e

    from components.ingest.pipeline import local_cores, run_ingest

    cluster = None
    try:
        address = args.dask_address
        if args.runner == "dask" and not address:
            cluster = local_dask_cluster(args.workers)
            address = cluster.scheduler_address
            config = IngestConfig(**{**config.to_dict(), "worker_threads": max(1, local_cores() // args.workers)})
        report = run_ingest(config, args.out, beam_pipeline_args=_beam_args(args, address), overwrite=args.force)
    except IngestError as e:
        raise CommandError(str(e), EXIT_USAGE) from e
    finally:
        if cluster is not None:
            cluster.close()
    print(report.summary_line())
    print(f"report: {args.out.rstrip('/')}/ingest_report.txt (and .json), preview: {args.out.rstrip('/')}/preview.png",
          file=sys.stderr)
    return 0
