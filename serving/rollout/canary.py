"""Automated canary analysis: `dcgan rollout canary V --analyze` labels V `canary` (the ordinary rollout step), sends
the same seeds to `stable` and `canary` for a bounded window, measures both, and promotes or rolls back by itself.

Measured per label, over the window:
- **errors and p99 latency** from the replicas' Prometheus pages (`--metrics H1:P1,...`, the REST ports; summed over
  replicas, the difference of the counters before and after the window): `dcgan serve` labels
  `dcgan_serving_requests_total`, `dcgan_serving_request_errors_total` and the histogram
  `dcgan_serving_request_latency_seconds` by model and version (serving/model_server/metrics.py), so other traffic
  the versions served during the window counts as well. p99 is read from the histogram as Prometheus'
  `histogram_quantile` does (linear within the bucket). A real TF Serving has no per-version metrics
  (`:tensorflow:serving:request_count` is labelled by model and status only), so without `--metrics`, or when the
  pages lack the version-labelled series, the figures are the analysis' own client-side ones (every request timed
  and its status kept); the JSON says which (`metrics_source`).
- **FID** of the canary's and the stable's images for the same seeds (the `generate` signature, first pass of the
  window) against the reference Inception statistics stored with the model (`assets.extra/fid_reference.npz`,
  dcgan.metrics.reference; the stable version's, else the canary's), so no dataset is needed at rollout time.

Rules (all must pass to promote): canary error rate ≤ stable's + `max_error_margin`; canary p99 ≤ `p99_factor` ×
stable's p99; canary FID ≤ stable's FID + `fid_margin` (default: the evaluation gate's `max_fid_regression` as
recorded with the reference statistics by the pipeline, else the allowance passed in, `max_fid_regression` /
`--max-fid-regression`, whose default 0 is the pipeline's default gate: no worse than stable). A figure that could
not be measured fails its rule. The decision and every figure are written as JSON beside the model config
(`<config>.analysis.json`, atomic, local or object store) and shown by `dcgan rollout status`.

The window is a minimum: the first pass over the seeds always completes (FID needs every sample), then requests
repeat the seeds until `window_s` has passed. Requests go to the replicas in turn, the two labels alternately first.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dcgan import fileio
from serving.model_server.options import DEFAULT_PROMETHEUS_PATH

if TYPE_CHECKING:  # this module is imported by the CLI's parser: TensorFlow, gRPC and numpy only inside functions
    from serving.client import ServingClient
    from serving.rollout.labels import Rollout

FORMAT = "dcgan-canary-analysis/1"
ANALYSIS_SUFFIX = ".analysis.json"
PROMOTE, ROLLBACK = "promote", "rollback"
EXIT_ROLLED_BACK = 3
REQUESTS_METRIC = "dcgan_serving_requests_total"
ERRORS_METRIC = "dcgan_serving_request_errors_total"
LATENCY_METRIC = "dcgan_serving_request_latency_seconds_bucket"


@dataclass(frozen=True)
class AnalysisConfig:
    window_s: float = 30.0  # minimum length of the comparison (the first pass over the seeds always completes)
    seeds: int = 64  # samples per version for FID (seeds first_seed..first_seed+seeds-1); FID is biased at small N
    first_seed: int = 0
    batch: int = 16  # seeds per generate request
    max_error_margin: float = 0.01  # canary error rate ≤ stable's + this (absolute, 0.01 = one point)
    p99_factor: float = 2.0  # canary p99 ≤ this × stable's p99
    fid_margin: float | None = None  # canary FID ≤ stable's + this; None = the gate's max_fid_regression
    max_fid_regression: float = 0.0  # the gate's allowance when the reference statistics record none (pipeline: 0)
    metrics: tuple[str, ...] = ()  # REST HOST:PORT of every replica's Prometheus page; () = client-side figures
    metrics_path: str = DEFAULT_PROMETHEUS_PATH
    timeout_s: float = 30.0  # per request

    def validate(self) -> AnalysisConfig:
        checks = {"window_s": self.window_s >= 0, "seeds": self.seeds >= 2, "batch": self.batch >= 1,
                  "max_error_margin": 0 <= self.max_error_margin <= 1, "p99_factor": self.p99_factor > 0,
                  "fid_margin": self.fid_margin is None or (math.isfinite(self.fid_margin) and self.fid_margin >= 0),
                  "max_fid_regression": math.isfinite(self.max_fid_regression) and self.max_fid_regression >= 0,
                  "timeout_s": self.timeout_s > 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid canary analysis setting(s): " + ", ".join(f"{n}={getattr(self, n)!r}"
                                                                             for n in bad)
                             + " (seeds ≥ 2, batch ≥ 1, 0 ≤ max_error_margin ≤ 1, p99_factor > 0, fid_margin ≥ 0, "
                               "max_fid_regression ≥ 0)")
        return self


def analysis_path(config_path: str) -> str:
    return config_path + ANALYSIS_SUFFIX


# -- Prometheus -------------------------------------------------------------------------------------------------------
@dataclass
class VersionCounts:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le → cumulative count

    def minus(self, other: VersionCounts) -> VersionCounts:
        return VersionCounts(self.requests - other.requests, self.errors - other.errors,
                             {le: n - other.buckets.get(le, 0.0) for le, n in self.buckets.items()})

    def add(self, other: VersionCounts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        for le, n in other.buckets.items():
            self.buckets[le] = self.buckets.get(le, 0.0) + n


def parse_metrics(text: str, model: str, method: str = "predict") -> dict[str, VersionCounts]:
    """Per-version request, error and latency-bucket counts of `model`'s `method` from a Prometheus page (summed
    over APIs and status codes); {} when the page has no version-labelled series (a real TF Serving)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, VersionCounts] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name not in (REQUESTS_METRIC, ERRORS_METRIC, LATENCY_METRIC) or labels.get("model") != model
                    or labels.get("method") != method or "version" not in labels):
                continue
            counts = out.setdefault(labels["version"], VersionCounts())  # "": failed before a version was chosen
            if sample.name == REQUESTS_METRIC:
                counts.requests += sample.value
            elif sample.name == ERRORS_METRIC:
                counts.errors += sample.value
            else:
                le = float(labels["le"])
                counts.buckets[le] = counts.buckets.get(le, 0.0) + sample.value
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts (linear within a bucket; the highest finite
    bound when the rank falls in +Inf); None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def scrape(targets: Sequence[str], path: str, model: str, timeout: float = 10.0) -> dict[str, VersionCounts]:
    """Sum of `parse_metrics` over every replica's page; RolloutError naming a replica whose page cannot be read."""
    from serving.rollout.labels import RolloutError

    total: dict[str, VersionCounts] = {}
    for target in targets:
        url = target if "://" in target else f"http://{target}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given address
                text = response.read().decode()
        except OSError as e:
            raise RolloutError(f"cannot read the Prometheus metrics of replica {target} ({url}): {e}") from None
        for version, counts in parse_metrics(text, model).items():
            total.setdefault(version, VersionCounts()).add(counts)
    return total


# -- traffic ----------------------------------------------------------------------------------------------------------
@dataclass
class ClientFigures:
    requests: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)
    png: dict[int, bytes] = field(default_factory=dict)  # seed → image of the first pass
    versions_seen: set[int] = field(default_factory=set)


def send_window(clients: Sequence[ServingClient], model: str, config: AnalysisConfig) -> tuple[dict, dict]:
    """Same seeds to both labels, replicas in turn, labels alternately first, until the first pass is done and
    `window_s` has passed. Returns ({label: ClientFigures}, window facts)."""
    from serving.client import ServingClientError
    from serving.rollout.labels import CANARY, STABLE

    seeds = list(range(config.first_seed, config.first_seed + config.seeds))
    chunks = [seeds[i:i + config.batch] for i in range(0, len(seeds), config.batch)]
    figures = {STABLE: ClientFigures(), CANARY: ClientFigures()}
    start = time.monotonic()
    rounds = 0
    while rounds < len(chunks) or time.monotonic() - start < config.window_s:
        chunk = chunks[rounds % len(chunks)]
        client = clients[rounds % len(clients)]
        order = (STABLE, CANARY) if rounds % 2 == 0 else (CANARY, STABLE)
        for label in order:
            f = figures[label]
            t0 = time.perf_counter()
            try:
                faces = client.generate(chunk, model=model, label=label, timeout=config.timeout_s)
            except ServingClientError as e:
                f.latencies_s.append(time.perf_counter() - t0)
                f.requests += 1
                f.errors += 1
                if len(f.error_messages) < 5:
                    f.error_messages.append(f"{client.target}: {e}")
                continue
            f.latencies_s.append(time.perf_counter() - t0)
            f.requests += 1
            f.versions_seen.add(int(faces.version))
            if rounds < len(chunks):
                f.png.update(zip(chunk, faces.png, strict=True))
        rounds += 1
    return figures, {"seconds": round(time.monotonic() - start, 3), "rounds": rounds, "requests_per_label": rounds,
                     "seeds": config.seeds, "first_seed": config.first_seed, "batch": config.batch,
                     "window_s": config.window_s}


# -- FID --------------------------------------------------------------------------------------------------------------
def score_fid(png: dict[int, bytes], seeds: int, reference, extractor) -> dict[str, Any]:  # noqa: ANN001
    """FID of the decoded images against the reference statistics (None when images are missing)."""
    import numpy as np

    from dcgan import images as imlib

    if len(png) < seeds:
        return {"fid": None, "fid_n": len(png), "note": f"only {len(png)} of {seeds} samples were generated"}
    images = np.stack([imlib.decode_png(png[s]) for s in sorted(png)])
    value = reference.fid(extractor(images))
    return {"fid": value if math.isfinite(value) else None, "fid_n": len(images)}


# -- decision ---------------------------------------------------------------------------------------------------------
def decide(stable: dict[str, Any], canary: dict[str, Any], max_error_margin: float, p99_factor: float,
           fid_margin: float) -> tuple[str, list[dict[str, Any]]]:
    """The three rules on measured figures ({requests, error_rate, p99_s, fid}); a figure that is None fails its
    rule. Returns (PROMOTE | ROLLBACK, checks)."""
    checks = []

    def check(rule: str, c: float | None, s: float | None, limit: float | None, text: str) -> None:
        passed = c is not None and limit is not None and c <= limit
        if c is None or s is None:
            detail = f"{rule}: not measured (canary {c}, stable {s})"
        else:
            detail = f"{text}: canary {c:.4g} {'≤' if passed else '>'} limit {limit:.4g} (stable {s:.4g})"
        checks.append({"rule": rule, "passed": passed, "canary": c, "stable": s, "limit": limit, "detail": detail})

    c_rate = canary.get("error_rate") if canary.get("requests") else None
    s_rate = stable.get("error_rate") if stable.get("requests") else None
    check("error_rate", c_rate, s_rate, None if s_rate is None else s_rate + max_error_margin,
          f"error rate (stable + {max_error_margin:g})")
    s_p99, c_p99 = stable.get("p99_s"), canary.get("p99_s")
    check("p99_latency", c_p99, s_p99, None if s_p99 is None else p99_factor * s_p99,
          f"p99 latency in s ({p99_factor:g} × stable)")
    s_fid, c_fid = stable.get("fid"), canary.get("fid")
    check("fid", c_fid, s_fid, None if s_fid is None else s_fid + fid_margin, f"FID (stable + {fid_margin:g})")
    return (PROMOTE if all(c["passed"] for c in checks) else ROLLBACK), checks


def default_fid_margin(reference_meta: dict[str, Any], max_fid_regression: float) -> tuple[float, str]:
    """The evaluation gate's max_fid_regression: as recorded with the reference statistics, else the allowance passed
    in (AnalysisConfig.max_fid_regression, `--max-fid-regression`)."""
    recorded = reference_meta.get("max_fid_regression")
    if recorded is not None:
        return float(recorded), "max_fid_regression recorded with the reference statistics (the pipeline's gate)"
    return float(max_fid_regression), "--max-fid-regression (the reference statistics record no max_fid_regression)"


# -- the analysis -----------------------------------------------------------------------------------------------------
def _model(config_path: str, name: str | None):
    from serving.model_server import config as cfg
    from serving.rollout.labels import RolloutError

    models = cfg.model_configs(cfg.read_model_server_config(config_path))
    if name is None:
        if len(models) != 1:
            raise RolloutError(f"{config_path} lists {len(models)} models; name one with --model")
        return next(iter(models.values()))
    if name not in models:
        raise RolloutError(f"model {name} is not in {config_path}")
    return models[name]


def _reference(base_path: str, versions: Sequence[int]):  # noqa: ANN202
    from dcgan.metrics.reference import has_reference_stats, read_reference_stats
    from serving.rollout.labels import RolloutError

    for v in versions:
        folder = fileio.join(base_path, str(v))
        if has_reference_stats(folder):
            return v, read_reference_stats(folder)
    raise RolloutError(f"no FID reference statistics with version(s) {', '.join(map(str, versions))} of "
                       f"{base_path} (assets.extra/fid_reference.npz, written by the pipeline's Trainer or "
                       "`dcgan export --reference-stats DATA`): the analysis cannot score FID; nothing was changed")


def _figures(label: str, version: int, client: ClientFigures, server: VersionCounts | None) -> dict[str, Any]:
    import numpy as np

    lat = np.asarray(client.latencies_s, np.float64)
    out: dict[str, Any] = {
        "label": label, "version": version,
        "client": {"requests": client.requests, "errors": client.errors,
                   "error_rate": client.errors / client.requests if client.requests else None,
                   "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
                   "p99_s": float(np.percentile(lat, 99)) if len(lat) else None,
                   "versions_answering": sorted(client.versions_seen), "error_examples": client.error_messages},
    }
    if server is not None:
        out["server"] = {"requests": server.requests, "errors": server.errors,
                         "error_rate": server.errors / server.requests if server.requests else None,
                         "p50_s": histogram_quantile(0.5, server.buckets),
                         "p99_s": histogram_quantile(0.99, server.buckets)}
    chosen = out["server"] if server is not None else out["client"]
    out.update(requests=chosen["requests"], errors=chosen["errors"], error_rate=chosen["error_rate"],
               p99_s=chosen["p99_s"])
    return out


def analyze(rollout: Rollout, version: int, config: AnalysisConfig, log=print) -> dict[str, Any]:  # noqa: ANN001
    """Canary `version`, measure, promote or roll back; returns the analysis (also written to
    `<config>.analysis.json`). RolloutError before anything changed when the model has no reference statistics or
    the canary step fails."""
    from dcgan.metrics.inception import get_extractor
    from serving.client import ServingClientError
    from serving.rollout.labels import CANARY, STABLE, RolloutError

    config = config.validate()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    model = _model(rollout.config_path, rollout.model_name)
    labels = dict(model.version_labels)
    candidates = [v for v in (labels.get(STABLE), int(version)) if v is not None]
    ref_version, reference = _reference(model.base_path, candidates)
    extractor = get_extractor()
    if reference.identity and reference.identity != extractor.identity:
        raise RolloutError(f"the reference statistics of version {ref_version} were computed with another "
                           f"Inception network ({reference.identity}; this one is {extractor.identity}); "
                           "nothing was changed")
    if config.fid_margin is not None:
        fid_margin, margin_source = config.fid_margin, "--fid-margin"
    else:
        fid_margin, margin_source = default_fid_margin(reference.meta, config.max_fid_regression)

    status = rollout.canary(int(version))
    stable_v, canary_v = status.labels[STABLE], status.labels[CANARY]
    log(f"canary: version {canary_v} labelled {CANARY} beside {STABLE} version {stable_v}; comparing for "
        f"≥ {config.window_s:g} s over {config.seeds} seeds")
    common: dict[str, Any] = {
        "format": FORMAT, "model": model.name, "config": rollout.config_path,
        "thresholds": {"max_error_margin": config.max_error_margin, "p99_factor": config.p99_factor,
                       "fid_margin": fid_margin, "fid_margin_source": margin_source},
        "replicas": [c.target for c in rollout.clients], "metrics_targets": list(config.metrics),
        "reference": {"version": ref_version, **{k: reference.meta.get(k) for k in
                                                 ("n", "data", "data_fingerprint", "split", "extractor", "created")}},
        "settings": asdict(config), "started": started,
    }
    try:
        result = {**common, **_measure(rollout.clients, model.name, stable_v, canary_v, config, reference, extractor,
                                       fid_margin)}
    except Exception as e:  # noqa: BLE001 - an analysis that cannot finish must not leave the canary labelled
        result = {**common, "decision": ROLLBACK, "failed_rules": ["analysis"],
                  "reason": f"the analysis failed, so the canary is rolled back: {type(e).__name__}: {e}",
                  "stable": {"label": STABLE, "version": stable_v}, "canary": {"label": CANARY, "version": canary_v},
                  "checks": [], "metrics_source": None}
    decision = result["decision"]
    try:
        after_status = rollout.promote() if decision == PROMOTE else rollout.rollback()
        result["labels_after"] = after_status.labels
    except (RolloutError, ServingClientError) as e:
        result["action_error"] = str(e)
        raise
    finally:
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        fileio.write_json_atomic(analysis_path(rollout.config_path), result, indent=2, default=_json_default)
    return result


def _measure(clients, model: str, stable_v: int, canary_v: int, config: AnalysisConfig, reference,  # noqa: ANN001
             extractor, fid_margin: float) -> dict[str, Any]:  # noqa: ANN001
    """The window, the figures, the rules: the analysis' evidence and decision."""
    from serving.rollout.labels import CANARY, STABLE

    source = "prometheus" if config.metrics else "client"
    note = None if config.metrics else ("no --metrics: client-side figures (a real TF Serving has no per-version "
                                        "metrics)")
    before = scrape(config.metrics, config.metrics_path, model) if config.metrics else {}
    traffic, window = send_window(clients, model, config)
    after = scrape(config.metrics, config.metrics_path, model) if config.metrics else {}
    server = {v: after[v].minus(before.get(v, VersionCounts())) for v in after}
    if config.metrics and not server:
        source, note = "client", ("the Prometheus pages have no version-labelled dcgan_serving_* series (a real TF "
                                  "Serving): client-side figures")

    def server_counts(v: int) -> VersionCounts | None:
        return server.get(str(v), VersionCounts()) if source == "prometheus" else None

    figures = {STABLE: _figures(STABLE, stable_v, traffic[STABLE], server_counts(stable_v)),
               CANARY: _figures(CANARY, canary_v, traffic[CANARY], server_counts(canary_v))}
    for label in (STABLE, CANARY):
        figures[label].update(score_fid(traffic[label].png, config.seeds, reference, extractor))
    decision, checks = decide(figures[STABLE], figures[CANARY], config.max_error_margin, config.p99_factor,
                              fid_margin)
    failed = [c["rule"] for c in checks if not c["passed"]]
    return {"decision": decision, "failed_rules": failed,
            "reason": "every rule passed" if not failed else "; ".join(c["detail"] for c in checks if not c["passed"]),
            "stable": figures[STABLE], "canary": figures[CANARY], "checks": checks, "metrics_source": source,
            "metrics_note": note, "window": window}


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (set, tuple)):
        return sorted(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def read_analysis(config_path: str) -> dict[str, Any] | None:
    import json

    path = analysis_path(config_path)
    if not fileio.exists(path):
        return None
    return json.loads(fileio.read_bytes(path).decode())


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What `dcgan rollout status` and `--analyze` print."""
    from serving.rollout.labels import CANARY, STABLE

    s, c = result["stable"], result["canary"]

    def fmt(x: Any, spec: str = ".4g") -> str:
        return "n/a" if x is None else format(x, spec)

    lines = [f"last canary analysis ({result.get('finished', result.get('started'))}): {result['decision'].upper()} "
             f"version {c['version']} (stable was {s['version']}); "
             + ("every rule passed" if not result["failed_rules"] else "failed: " + ", ".join(result["failed_rules"])),
             f"  {'':<8}{'requests':>9}{'errors':>8}{'err rate':>10}{'p99 ms':>9}{'FID':>9}  (figures: "
             f"{result['metrics_source']}, FID at N={c.get('fid_n')} vs reference of version "
             f"{result['reference']['version']}, N={result['reference'].get('n')})"]
    for label, f in ((STABLE, s), (CANARY, c)):
        p99 = None if f.get("p99_s") is None else 1000 * f["p99_s"]
        lines.append(f"  {label:<8}{fmt(f.get('requests'), '.0f'):>9}{fmt(f.get('errors'), '.0f'):>8}"
                     f"{fmt(f.get('error_rate'), '.3f'):>10}{fmt(p99, '.1f'):>9}{fmt(f.get('fid'), '.2f'):>9}")
    if "analysis" in result["failed_rules"]:
        lines.append(f"  {result['reason']}")
    for check in result["checks"]:
        lines.append(f"  [{'ok' if check['passed'] else 'FAIL'}] {check['detail']}")
    if result.get("action_error"):
        lines.append(f"  the {result['decision']} step failed: {result['action_error']}")
    return lines


# -- CLI --------------------------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:  # noqa: ANN001
    """`dcgan rollout canary V --analyze ...` flags."""
    d = AnalysisConfig()
    g = parser.add_argument_group("automated canary analysis (--analyze)")
    g.add_argument("--analyze", action="store_true",
                   help="after labelling the canary, compare it with stable and promote or roll back by itself")
    g.add_argument("--window", type=float, default=d.window_s, help=f"seconds of comparison (default {d.window_s:g}; "
                                                                     "the first pass over the seeds always completes)")
    g.add_argument("--seeds", type=int, default=d.seeds, help=f"samples per version for FID (default {d.seeds})")
    g.add_argument("--first-seed", type=int, default=d.first_seed, help="first seed (default 0)")
    g.add_argument("--batch", type=int, default=d.batch, help=f"seeds per request (default {d.batch})")
    g.add_argument("--max-error-margin", type=float, default=d.max_error_margin,
                   help=f"canary error rate may exceed stable's by this much (default {d.max_error_margin:g})")
    g.add_argument("--p99-factor", type=float, default=d.p99_factor,
                   help=f"canary p99 may be this many times stable's (default {d.p99_factor:g})")
    g.add_argument("--fid-margin", type=float, default=None,
                   help="canary FID may exceed stable's by this much (default: the evaluation gate's "
                        "max_fid_regression recorded with the model's reference statistics, else --max-fid-regression)")
    g.add_argument("--max-fid-regression", type=float, default=d.max_fid_regression,
                   help="the evaluation gate's allowance, used when the model's reference statistics record none "
                        f"(default {d.max_fid_regression:g}: the pipeline's default gate, no worse than stable)")
    g.add_argument("--metrics", default="",
                   help="REST HOST:PORT[,HOST:PORT...] of every replica's Prometheus page (or full URLs); default: "
                        "client-side figures")
    g.add_argument("--metrics-path", default=DEFAULT_PROMETHEUS_PATH, help="Prometheus path (TF Serving's default)")


def config_from_args(args) -> AnalysisConfig:  # noqa: ANN001
    from serving.rollout.fleet import resolve_servers

    metrics = tuple(resolve_servers(args.metrics)) if args.metrics else ()
    return AnalysisConfig(window_s=args.window, seeds=args.seeds, first_seed=args.first_seed, batch=args.batch,
                          max_error_margin=args.max_error_margin, p99_factor=args.p99_factor,
                          fid_margin=args.fid_margin, max_fid_regression=args.max_fid_regression, metrics=metrics,
                          metrics_path=args.metrics_path).validate()
