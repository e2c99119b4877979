"""Training options at the same wall-clock budget: FID/floor per option (issue 13, item 1).

Each option (DiffAugment, TTUR, more avatars, EMA decay, ...) changes the paper's recipe at the `quick` preset's
scale (32×32 avatars, ngf=ndf=64, batch 64, EMA 0.995). Options cost different time per step (DiffAugment adds
work), so one wall-clock budget is converted into steps per option:

    1. timing  one process builds a trainer per distinct training computation (options that only change learning
               rates, EMA decay or the number of avatars run the same computation as the baseline and share its
               time), warms each up, then times them back to back in alternating rounds; ratio = median step time /
               the baseline's, from the same process — so machine load cancels out of the ratio.
    2. train   each option for round(budget_steps / ratio) steps (`--parallel` at a time: quality at a fixed step
               count does not depend on load). A run dir that exists is resumed/extended, never restarted.
    3. eval    FID at N=1000 of each run's sampling generator (the EMA copy) against the eval split of the 4,000
               avatars every option shares, and the floor (1,000 training avatars vs the same eval images), with
               the quick preset's EvaluationConfig — the numbers `make run` reports.
    4. table   option, step-time ratio, steps, FID, floor, FID/floor.

    .venv/bin/python bench/training_options.py                       # all phases, the default options
    .venv/bin/python bench/training_options.py --phase table         # the table of what is there
    .venv/bin/python bench/training_options.py --options baseline,ttur --budget-steps 3000

Everything lands under --out (default runs/training_options): data/, timing.json, <option>/run, <option>/eval.
Re-running skips what is done. Check `uptime` beside the numbers: load changes wall time, not these ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_AVATARS = 4000  # every option is scored against the eval split of avatars:4000:0 (431 images)
SIZE = 32

# The reference: the quick preset's recipe as it was before any option (the paper's update, EMA 0.995).
BASE: dict[str, Any] = dict(size=SIZE, ngf=64, ndf=64, batch_size=64, learning_rate=2e-4, beta1=0.5, ema_decay=0.995,
                            log_every=50, sample_every=500, checkpoint_every=250, num_samples=64)

OPTIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "diffaugment": {"diffaugment": "color,translation,cutout"},
    "diffaugment_ct": {"diffaugment": "color,translation"},
    "ttur": {"learning_rate": 1e-4, "d_learning_rate": 4e-4},
    "ttur_slow_d": {"d_learning_rate": 1e-4},
    "ttur_fast_g": {"learning_rate": 4e-4, "d_learning_rate": 2e-4},
    "diffaugment_ct_fast_g": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4},
    "diffaugment_ttur": {"diffaugment": "color,translation,cutout", "learning_rate": 1e-4, "d_learning_rate": 4e-4},
    "avatars16k": {"avatars": 16000},
    "diffaugment_16k": {"diffaugment": "color,translation,cutout", "avatars": 16000},
    "ema999": {"ema_decay": 0.999},
    # Issue 27 (make run within 15 minutes on an AVX2 CPU): the quick recipe with cheaper networks, more steps.
    "quick_ndf32": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4, "ndf": 32},
    "quick_ngf48_ndf32": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4,
                          "ngf": 48, "ndf": 32},
    "quick_ndf48": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4, "ndf": 48},
    "quick_ndf16": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4, "ndf": 16},
    "quick_ngf48_ndf16": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4,
                          "ngf": 48, "ndf": 16},
    "quick_ndf32_ema99": {"diffaugment": "color,translation", "learning_rate": 4e-4, "d_learning_rate": 2e-4,
                          "ndf": 32, "ema_decay": 0.99},
}
DEFAULT_OPTIONS = ("baseline,diffaugment,diffaugment_ct,ttur,ttur_slow_d,ttur_fast_g,avatars16k,diffaugment_16k,"
                   "diffaugment_ct_fast_g")
# What changes the work of one step (everything else shares the baseline's time).
COMPUTE_FIELDS = ("size", "ngf", "ndf", "batch_size", "diffaugment", "precision")


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def option_settings(name: str) -> dict[str, Any]:
    if name not in OPTIONS:
        raise SystemExit(f"unknown option {name!r}; choose from {', '.join(OPTIONS)}")
    return {**BASE, "avatars": EVAL_AVATARS, **OPTIONS[name]}


def compute_key(settings: dict[str, Any]) -> str:
    return json.dumps({k: settings.get(k, "") for k in COMPUTE_FIELDS}, sort_keys=True)


def data_dir(out: str, avatars: int) -> str:
    return os.path.join(out, "data", f"avatars_{avatars}_{SIZE}")


def train_config(settings: dict[str, Any], data: str, steps: int, threads: int):
    from dcgan.config import TrainConfig

    changes = {k: v for k, v in settings.items() if k != "avatars"}
    return TrainConfig(data=data).replace(steps=steps, intra_op_threads=threads, inter_op_threads=1,
                                          **changes).validate()


# -- phase 0: data ----------------------------------------------------------------------------------------------------
def ensure_data(out: str, avatars: int) -> str:
    folder = data_dir(out, avatars)
    if os.path.isdir(os.path.join(folder, "Split-train")):
        return folder
    print(f"data: rendering avatars:{avatars}:0 at {SIZE}x{SIZE} into {folder}", flush=True)
    subprocess.run([os.path.join(REPO, ".venv", "bin", "dcgan"), "ingest", f"avatars:{avatars}:0", folder,
                    "--size", str(SIZE), "--eval-ratio", "0.1", "--seed", "0"], check=True, cwd=REPO)
    return folder


# -- phase 1: step time -----------------------------------------------------------------------------------------------
def worker_timing(args: argparse.Namespace) -> dict[str, Any]:
    """In one process: a trainer per computation, timed back to back in alternating rounds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tempfile
    import warnings

    warnings.filterwarnings("ignore")
    from dcgan.train import Trainer, configure_threads

    configure_threads(args.threads, 1)
    keys = json.loads(args.keys)
    data = os.path.join(data_dir(args.out, EVAL_AVATARS), "Split-train")
    times: dict[str, list[float]] = {k: [] for k in keys}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for i, key in enumerate(keys):
            settings = {**BASE, **{k: v for k, v in json.loads(key).items() if v != ""}}
            trainers[key] = Trainer(train_config(settings, data, 10_000, args.threads), os.path.join(tmp, str(i)),
                                    progress=False)
            for _ in range(args.warmup):
                trainers[key]._train_step()
        for r in range(args.rounds):
            for key in (keys if r % 2 == 0 else list(reversed(keys))):
                t = time.perf_counter()
                for _ in range(args.timing_steps):
                    out = trainers[key]._train_step()
                float(out["d_loss"])  # wait for the last step
                times[key].append((time.perf_counter() - t) / args.timing_steps)
    return {"seconds_per_step": times}


def measure_timing(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    path = os.path.join(args.out, "timing.json")
    keys = sorted({compute_key(option_settings(n)) for n in names})
    base_key = compute_key(option_settings("baseline"))
    if base_key not in keys:
        keys.append(base_key)
    if os.path.exists(path):
        with open(path) as f:
            timing = json.load(f)
        if set(keys) <= set(timing["seconds_per_step"]):
            return timing
    ensure_data(args.out, EVAL_AVATARS)
    print(f"timing: {len(keys)} computations x {args.rounds} rounds x {args.timing_steps} steps; {_load()}",
          flush=True)
    load_before = _load()
    cmd = [sys.executable, __file__, "--worker", "timing", "--out", args.out, "--keys", json.dumps(keys),
           "--threads", str(args.threads), "--rounds", str(args.rounds), "--timing-steps", str(args.timing_steps),
           "--warmup", str(args.warmup)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    if result.returncode != 0:
        raise RuntimeError(f"timing worker failed:\n{result.stderr[-3000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    medians = {k: statistics.median(v) for k, v in timing["seconds_per_step"].items()}
    timing.update(median=medians, ratio={k: medians[k] / medians[base_key] for k in medians}, baseline_key=base_key,
                  load=[load_before, _load()], rounds=args.rounds, timing_steps=args.timing_steps)
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(timing, f, indent=2)
    return timing


def ratio_of(timing: dict[str, Any], name: str) -> float:
    return timing["ratio"][compute_key(option_settings(name))]


def steps_of(timing: dict[str, Any], name: str, budget: int) -> int:
    return int(round(budget / ratio_of(timing, name)))


# -- phase 2: training ------------------------------------------------------------------------------------------------
def worker_train(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")
    from dcgan.run import is_run_dir
    from dcgan.train import Trainer

    settings = option_settings(args.option)
    data = os.path.join(data_dir(args.out, settings["avatars"]), "Split-train")
    run = os.path.join(args.out, args.option, "run")
    if is_run_dir(run):
        trainer = Trainer.resume(run, steps=args.steps, progress=False)
    else:
        trainer = Trainer(train_config(settings, data, args.steps, args.threads), run, progress=False)
    t = time.perf_counter()
    result = trainer.train()
    return {"step": result.step, "seconds": time.perf_counter() - t}


def trained_step(out: str, name: str) -> int:
    import glob
    import re

    steps = [int(m.group(1)) for p in glob.glob(os.path.join(out, name, "run", "checkpoints", "ckpt-*.index"))
             if (m := re.search(r"ckpt-(\d+)\.index$", p))]
    return max(steps, default=0)


def train_all(args: argparse.Namespace, names: list[str], timing: dict[str, Any]) -> None:
    todo = [(n, steps_of(timing, n, args.budget_steps)) for n in names]
    todo = [(n, s) for n, s in todo if trained_step(args.out, n) < s]
    for n, _ in todo:
        ensure_data(args.out, option_settings(n)["avatars"])

    def train(item: tuple[str, int]) -> None:
        name, steps = item
        print(f"train: {name} to step {steps} ({_load()})", flush=True)
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
        cmd = [sys.executable, __file__, "--worker", "train", "--out", args.out, "--option", name,
               "--steps", str(steps), "--threads", str(args.threads)]
        with open(os.path.join(args.out, name, "train.log"), "a") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": REPO})
        print(f"train: {name} done ({_load()})", flush=True)

    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        list(pool.map(train, todo))


# -- phase 3: evaluation ----------------------------------------------------------------------------------------------
def evaluation_config():
    from dcgan.metrics.config import EvaluationConfig
    from pipeline.config import preset

    quick = preset("quick").evaluation.component_args()
    return EvaluationConfig(**{k: v for k, v in quick.items() if k not in ("fid_threshold", "max_fid_regression")})


def evaluate_all(args: argparse.Namespace, names: list[str], timing: dict[str, Any]) -> None:
    from dcgan.metrics.evaluate import evaluate_generator

    config = evaluation_config()
    data = ensure_data(args.out, EVAL_AVATARS)
    for name in names:
        out_dir = os.path.join(args.out, name, "eval")
        metrics_path = os.path.join(out_dir, "metrics.json")
        step = trained_step(args.out, name)
        if step < steps_of(timing, name, args.budget_steps):
            print(f"eval: {name} not trained to its budget yet (step {step})", flush=True)
            continue
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                if json.load(f).get("inputs", {}).get("step") == step:
                    continue
        print(f"eval: {name} at step {step} ({_load()})", flush=True)
        result = evaluate_generator(os.path.join(args.out, name, "run"), data, out_dir, config,
                                    cache=os.path.join(args.out, "feature_cache"), progress=False)
        record = result.to_dict()
        record["inputs"]["step"] = step
        with open(metrics_path, "w") as f:
            json.dump(record, f, indent=2, default=str)


# -- phase 4: the table -----------------------------------------------------------------------------------------------
def table(args: argparse.Namespace, names: list[str], timing: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        path = os.path.join(args.out, name, "eval", "metrics.json")
        metrics = {}
        if os.path.exists(path):
            with open(path) as f:
                metrics = json.load(f)["metrics"]
        fid, floor = metrics.get("fid"), metrics.get("fid_floor")
        rows.append({"option": name, "changes": OPTIONS[name], "step_time_ratio": ratio_of(timing, name),
                     "steps": steps_of(timing, name, args.budget_steps), "fid": fid, "floor": floor,
                     "fid_over_floor": fid / floor if fid and floor else None})
    print(f"\nBudget: the wall-clock time of {args.budget_steps} baseline steps; step-time ratios measured back to "
          f"back in one process ({timing['rounds']} rounds x {timing['timing_steps']} steps; "
          f"{timing['load'][0]} → {timing['load'][1]}). FID at N=1000 vs the 431 eval avatars.\n")
    print("| option | changes | step-time ratio | steps | FID | floor | FID/floor |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "(the paper, EMA 0.995)"
        fid = f"{r['fid']:.2f}" if r["fid"] else "—"
        floor = f"{r['floor']:.2f}" if r["floor"] else "—"
        ratio = f"{r['fid_over_floor']:.2f}×" if r["fid_over_floor"] else "—"
        print(f"| {r['option']} | {changes} | {r['step_time_ratio']:.3f} | {r['steps']} | {fid} | {floor} | "
              f"{ratio} |")
    print(f"\n{_load()}")
    with open(os.path.join(args.out, "table.json"), "w") as f:
        json.dump(rows, f, indent=2)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=("timing", "train"), help=argparse.SUPPRESS)
    p.add_argument("--keys", help=argparse.SUPPRESS)
    p.add_argument("--option", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", default=os.path.join(REPO, "runs", "training_options"))
    p.add_argument("--options", default=DEFAULT_OPTIONS, help=f"comma-separated, from: {', '.join(OPTIONS)}")
    p.add_argument("--budget-steps", type=int, default=3000, help="the budget, in baseline steps (the quick preset)")
    p.add_argument("--phase", choices=("all", "timing", "train", "eval", "table"), default="all")
    p.add_argument("--parallel", type=int, default=2, help="training runs at a time")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads per process")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timing-steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    if args.worker == "timing":
        print(json.dumps(worker_timing(args)))
        return
    if args.worker == "train":
        print(json.dumps(worker_train(args)))
        return
    from dcgan.runtime import machine_line

    print(machine_line(), flush=True)

    names = [n.strip() for n in args.options.split(",") if n.strip()]
    for n in names:
        option_settings(n)
    timing = measure_timing(args, names)
    if args.phase in ("all", "train"):
        train_all(args, names, timing)
    if args.phase in ("all", "eval"):
        evaluate_all(args, names, timing)
    table(args, names, timing)


if __name__ == "__main__":
    main()
