"""`dcgan project IMAGE --server H:P`: bring your own face — crop it like the training data, ask the model server's
`project` signature for its z, and write the crop, the reconstruction and the z.

Photos go through the ingest's face aligner (dcgan.faces via dcgan.projection); small squares (avatars, crops) are
centre-cropped; `--center-crop` skips detection for a photo in which no face is found. Registered through the
`dcgan.commands` entry point (pyproject.toml); only the standard library is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import os

DEFAULT_MAX_BYTES = 20 << 20  # 20 MiB: a phone photo is a few MiB


def _add_project(sub) -> None:
    p = sub.add_parser("project", help="find the z of your own face image on a model server (project signature)",
                       description="Crop IMAGE like the training data (photos: face detection + alignment; small "
                                   "square images such as avatars: centre crop), send it to the model server's "
                                   "`project` signature, and write OUT/original.png (the crop), "
                                   "OUT/reconstruction.png (G(z)), OUT/side_by_side.png and OUT/projection.json "
                                   "(z, distance, model version). Use the z in the studio or with serving_default.",
                       epilog="example: dcgan project me.jpg --server 127.0.0.1:8500 --out me/")
    p.add_argument("image", metavar="IMAGE", help="a JPEG/PNG/WebP/GIF/BMP file")
    p.add_argument("--server", default=os.environ.get("DCGAN_SERVER", "127.0.0.1:8500"),
                   help="gRPC address HOST:PORT of the model server (default $DCGAN_SERVER or 127.0.0.1:8500)")
    p.add_argument("--model", default="dcgan", help="model name (default dcgan)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--label", help="version label to ask for (e.g. stable, canary)")
    group.add_argument("--version", type=int, help="version number to ask for")
    p.add_argument("--out", default="projection", help="output folder (default ./projection)")
    p.add_argument("--center-crop", action="store_true",
                   help="skip face detection: take the largest central square (for crops, drawings, avatars)")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"refuse files larger than this (default {DEFAULT_MAX_BYTES} bytes)")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline of the projection call in seconds")
    p.set_defaults(func=_cmd_project)


def _cmd_project(args: argparse.Namespace) -> int:
    from dcgan.cli import EXIT_USAGE, CommandError, quiet_tensorflow

    quiet_tensorflow()
    if not os.path.isfile(args.image):
        raise CommandError(f"{args.image!r} is not a file", EXIT_USAGE)
    size = os.path.getsize(args.image)
    if size > args.max_bytes:
        raise CommandError(f"{args.image!r} is {size} bytes, over the limit of {args.max_bytes} (--max-bytes)",
                           EXIT_USAGE)
    with open(args.image, "rb") as f:
        data = f.read()

    import numpy as np

    from dcgan import images as imlib
    from dcgan import projection
    from serving.client import ServingClient, ServingClientError

    # Decode before any network call: a file that is not an image is the user's to fix, whatever the server.
    try:
        decoded = imlib.decode_image(data)
    except imlib.ImageRejected as e:
        raise CommandError(f"{args.image!r} cannot be used: {e}", EXIT_USAGE) from None
    target = {"model": args.model, "version": args.version, "label": args.label}
    try:
        with ServingClient(args.server, timeout=args.timeout) as client:
            meta = client.metadata(**target, timeout=min(30.0, args.timeout))
            sig = meta.signature_defs.get("project")
            if sig is None:
                raise CommandError(f"model {meta.model!r} version {meta.version} has no `project` signature "
                                   "(exported before it existed): export it again with `dcgan export`")
            dims = [int(d.size) for d in sig.inputs["image"].tensor_shape.dim]
            side = dims[1]
            try:
                crop, how = projection.crop_decoded(decoded, side, projection.CROP_CENTER if args.center_crop
                                                    else projection.CROP_AUTO)
            except projection.NoFaceFound as e:
                raise CommandError(f"{args.image!r}: {e}: run again with --center-crop", EXIT_USAGE) from None
            result = client.predict({"image": projection.to_model_range([crop])}, signature="project",
                                    model=meta.model, version=meta.version)
    except ServingClientError as e:
        raise CommandError(f"{args.server}: {e}") from None
    z = result.outputs["z"][0]
    reconstruction = imlib.to_uint8(result.outputs["images"])[0]
    distance = float(result.outputs["distance"][0])
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    paths = {"original": os.path.join(out, "original.png"), "reconstruction": os.path.join(out, "reconstruction.png"),
             "side_by_side": os.path.join(out, "side_by_side.png")}
    imlib.save_image(crop, paths["original"])
    imlib.save_image(reconstruction, paths["reconstruction"])
    imlib.save_image(imlib.make_grid(np.stack([crop, reconstruction]), ncols=2), paths["side_by_side"])
    record = {"image": os.path.abspath(args.image), "crop": how, "server": args.server, "model": result.model,
              "version": result.version, "signature": "project", "distance": distance,
              "distance_is": "per-pixel MSE of the reconstruction, pixels in [-1, 1]", "z": z.tolist(), **paths}
    with open(os.path.join(out, "projection.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"projected {args.image} ({how}) on {result.model} version {result.version}: distance {distance:.4f} "
          f"(per-pixel MSE) -> {paths['side_by_side']}, z in {os.path.join(out, 'projection.json')}")
    return 0


def register(subparsers) -> None:
    """Add `dcgan project` to the `dcgan` CLI."""
    _add_project(subparsers)
