"""Edits that change only what was asked: the quality table of a model's stored directions (mean difference vs
boundary vs conditional, plus SeFa's largest changes), measured afresh on new samples and graded by the independent
judge exported beside the model (assets.extra/attribute_judge, trained on the other half of the examples; it fitted
nothing): success by the judge and by the fitting classifier, their agreement, net leakage, churn per face, churn
relative to a control row of random unit directions moved as far, the linear ceiling and success relative to it;
then the satisfaction rate of a few "specify, then generate" requests (the share of random faces that meet every
constraint, and each constraint alone, by the judge).

    .venv/bin/python bench/directions_quality.py [SAVED_MODEL_DIR] [--samples 1000] [--seed 1000] [--amount 2]

SAVED_MODEL_DIR defaults to the newest pushed version under runs/quick (`make run`). Numbers depend on the machine
only through the model; the load is printed beside them anyway."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPECIFY = [
    {"Eyeglasses": True, "Smiling": True, "Wearing_Hat": False},
    {"Smiling": True},
    {"Eyeglasses": False, "Beard": True},
    {"Blond_Hair": True, "Smiling": False},
]


def newest_model(root: str = "runs/quick") -> str:
    found = sorted(glob.glob(os.path.join(root, "**", "assets.extra", "directions.json"), recursive=True),
                   key=os.path.getmtime)
    if not found:
        raise SystemExit(f"no model with directions under {root}: run `make run` first or pass SAVED_MODEL_DIR")
    return os.path.dirname(os.path.dirname(found[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved_model_dir", nargs="?")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--amount", type=float, help="step in σ (default: the model's quality_amount, 2)")
    parser.add_argument("--control", type=int, help="random directions of the control row (default: the model's, 8)")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    from dcgan.directions import measure_quality
    from dcgan.edit_quality import format_quality
    from dcgan.runtime import machine_line

    print(machine_line(), flush=True)

    path = args.saved_model_dir or newest_model()
    started, load = time.monotonic(), os.getloadavg()[0]
    table = measure_quality(path, samples=args.samples, seed=args.seed, amount=args.amount,
                            control_directions=args.control)
    print(f"model: {path}\nfresh samples: {args.samples} (numpy default_rng({args.seed}))   "
          f"load average: {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end   "
          f"{time.monotonic() - started:.0f} s\n")
    print(format_quality(table))
    names, base = table.pop("names"), table.pop("base_verdicts")
    print(f"\nspecify, then generate: share of random faces meeting every constraint (and each alone), by the "
          f"{table['graded_by']}")
    rates = []
    for constraints in SPECIFY:
        known = {k: v for k, v in constraints.items() if k in names}
        if not known:
            continue
        met = np.stack([base[:, names.index(k)] == v for k, v in known.items()], 1)
        alone = ", ".join(f"{k}={str(v).lower()} {m:.2f}" for (k, v), m in zip(known.items(), met.mean(0)))
        joint = float(met.all(1).mean())
        rates.append({"constraints": known, "rate": round(joint, 4)})
        needed = "-" if joint == 0 else f"{int(np.ceil(8 / joint))}"
        print(f"  {json.dumps(known):<62} {joint:6.3f}  (alone: {alone}; ~{needed} samples for 8 faces)")
    if args.json:
        table["specify"] = rates
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == "__main__":
    from dcgan.fileio import exit_process

    exit_process(main())
