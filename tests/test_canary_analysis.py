"""Automated canary analysis (serving/rollout/canary.py) with two real `dcgan serve` replicas on loopback polling one
config, real SavedModels and real FID against the reference statistics stored with the stable version:

- a generator whose weights were scrambled (it outputs noise) is canaried and rolled back automatically; the JSON
  beside the config names the failed rule (fid) and holds every figure;
- a good generator (the trained test model) is promoted; `dcgan rollout status` shows the analysis.

The rules themselves (error rate, p99, FID; unmeasured figures fail) are also checked on given figures, and the
Prometheus parsing against a real server's page. Kept cheap: 64 reference images, 24 seeds per version, 32×32.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.request

import numpy as np
import pytest
from serving_helpers import MODEL, add_version, running_server, write_config

pytestmark = pytest.mark.stack_neutral  # make test-current skips it (docs/development.md)

POLL_S = 0.3
SEEDS = 24


@pytest.fixture(scope="module")
def stable_model(tmp_path_factory, tiny_saved_model, image_folder) -> str:
    """The trained test model with the reference statistics of 64 of the synthetic real images."""
    from dcgan.metrics.reference import store_reference_stats

    target = str(tmp_path_factory.mktemp("stable") / "model")
    shutil.copytree(tiny_saved_model, target)
    store_reference_stats(target, image_folder, num=64, seed=0, max_fid_regression=5.0)
    return target


@pytest.fixture(scope="module")
def noise_model(tmp_path_factory, tiny_run) -> str:
    """The same architecture with every weight replaced by N(0, 2²) draws: tanh saturates into ±1 noise."""
    from dcgan.export import export_generator
    from dcgan.run import load_models

    models = load_models(tiny_run, precision="float32")
    generator = models.sampling_generator
    rng = np.random.default_rng(0)
    for w in generator.trainable_weights:
        w.assign(rng.normal(0.0, 2.0, w.shape).astype(np.float32))
    return export_generator(generator, models.config.model, str(tmp_path_factory.mktemp("noise") / "model"))


@pytest.fixture
def fleet(tmp_path, stable_model, noise_model, tiny_saved_model):
    """Versions 1 (stable, with reference statistics), 2 (noise), 3 (the trained model again); two replicas."""
    base = str(tmp_path / "models" / MODEL)
    add_version(stable_model, base, 1)
    add_version(noise_model, base, 2)
    add_version(tiny_saved_model, base, 3)
    path = write_config(str(tmp_path / "models.config"),
                        [{"name": MODEL, "base_path": base, "policy": [1], "labels": {"stable": 1}}])
    polling = {"model_config_file": path, "model_config_file_poll_wait_seconds": POLL_S,
               "file_system_poll_wait_seconds": POLL_S, "allow_version_labels_for_unavailable_models": True}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(running_server(**polling)) for _ in range(2)]
        yield path, servers


def _rollout(path, servers):
    from serving.client import ServingClient
    from serving.rollout.labels import Rollout

    clients = [ServingClient(s.grpc_target, timeout=30.0) for s in servers]
    return Rollout(path, clients, wait_timeout_s=60, push=False), clients


def _metrics(servers) -> tuple[str, ...]:
    return tuple(s.rest_url.split("://", 1)[1].rstrip("/") for s in servers)


def test_noise_canary_is_rolled_back_and_good_canary_promoted(fleet, capsys, artifacts_dir):
    from serving.rollout.canary import AnalysisConfig, analysis_path, analyze

    path, servers = fleet
    rollout, clients = _rollout(path, servers)
    # p99_factor is generous: both versions have the same architecture, and this test is about the FID rule.
    config = AnalysisConfig(window_s=0.5, seeds=SEEDS, batch=8, p99_factor=20.0, metrics=_metrics(servers))

    bad = analyze(rollout, 2, config, log=lambda line: None)
    assert bad["decision"] == "rollback"
    assert bad["failed_rules"] == ["fid"]
    assert bad["labels_after"] == {"stable": 1}
    assert rollout.status().labels == {"stable": 1}
    saved = json.loads(open(analysis_path(path)).read())
    assert saved["decision"] == "rollback" and saved["failed_rules"] == ["fid"]
    assert saved["metrics_source"] == "prometheus"
    assert saved["thresholds"]["fid_margin"] == 5.0  # recorded with the reference statistics
    assert saved["reference"]["version"] == 1 and saved["reference"]["n"] == 64
    stable, canary = saved["stable"], saved["canary"]
    assert stable["version"] == 1 and canary["version"] == 2
    assert stable["fid_n"] == canary["fid_n"] == SEEDS
    assert canary["fid"] > stable["fid"] + 5.0
    # Server-side counts: every request the analysis sent, summed over both replicas, no errors.
    rounds = saved["window"]["rounds"]
    for figures in (stable, canary):
        assert figures["requests"] == figures["client"]["requests"] == rounds
        assert figures["errors"] == 0 and figures["error_rate"] == 0.0
        assert figures["p99_s"] is not None and figures["p99_s"] > 0
        assert figures["client"]["versions_answering"] == [figures["version"]]
    shutil.copyfile(analysis_path(path), os.path.join(artifacts_dir, "canary-analysis-rollback.json"))
    fid_check = next(c for c in saved["checks"] if c["rule"] == "fid")
    assert not fid_check["passed"] and fid_check["limit"] == pytest.approx(stable["fid"] + 5.0)

    good = analyze(rollout, 3, config, log=lambda line: None)
    assert good["decision"] == "promote", good["reason"]
    assert good["failed_rules"] == []
    assert good["labels_after"] == {"stable": 3, "previous": 1}
    assert good["canary"]["fid"] == pytest.approx(good["stable"]["fid"], rel=1e-6)  # same weights, same seeds
    for c in clients:
        assert c.metadata(model=MODEL, label="stable").version == 3
    shutil.copyfile(analysis_path(path), os.path.join(artifacts_dir, "canary-analysis-promote.json"))

    # `dcgan rollout status` shows the last analysis.
    from dcgan.cli import main

    capsys.readouterr()
    assert main(["rollout", "status", "--config", path, "--server", ",".join(s.grpc_target for s in servers),
                 "--poll"]) == 0
    out = capsys.readouterr().out
    assert "PROMOTE version 3" in out and "[ok] FID" in out
    for c in clients:
        c.close()


def test_cli_analyze_rolls_back_with_exit_code_and_client_side_figures(fleet, capsys):
    """The command line, without --metrics: the figures are the analysis' own (what a real TF Serving fleet gets)."""
    from dcgan.cli import main
    from serving.rollout.canary import EXIT_ROLLED_BACK, analysis_path

    path, servers = fleet
    targets = ",".join(s.grpc_target for s in servers)
    code = main(["rollout", "canary", "2", "--analyze", "--window", "0", "--seeds", str(SEEDS), "--batch", "12",
                 "--p99-factor", "20", "--config", path, "--server", targets, "--poll"])
    assert code == EXIT_ROLLED_BACK
    out = capsys.readouterr().out
    assert "ROLLBACK version 2" in out and "[FAIL] FID" in out
    saved = json.loads(open(analysis_path(path)).read())
    assert saved["metrics_source"] == "client" and "TF Serving" in saved["metrics_note"]
    assert saved["canary"]["requests"] == saved["window"]["rounds"] == 2
    assert saved["labels_after"] == {"stable": 1} and '"canary"' not in open(path).read()
    # An analysis that cannot finish (a Prometheus page that does not answer) rolls the canary back, and says why.
    from conftest import free_port

    code = main(["rollout", "canary", "3", "--analyze", "--window", "0", "--seeds", "4", "--config", path,
                 "--server", targets, "--poll", "--metrics", f"127.0.0.1:{free_port()}"])
    assert code == EXIT_ROLLED_BACK
    saved = json.loads(open(analysis_path(path)).read())
    assert saved["failed_rules"] == ["analysis"] and "cannot read the Prometheus metrics" in saved["reason"]
    assert saved["labels_after"] == {"stable": 1}
    assert "the analysis failed" in capsys.readouterr().out


def test_model_without_reference_statistics_is_refused_before_any_change(tmp_path, tiny_saved_model):
    from serving.rollout.canary import AnalysisConfig, analyze
    from serving.rollout.labels import RolloutError

    base = str(tmp_path / "models" / MODEL)
    add_version(tiny_saved_model, base, 1)
    add_version(tiny_saved_model, base, 2)
    path = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base, "policy": [1],
                                                          "labels": {"stable": 1}}])
    before = open(path).read()
    with running_server(model_config_file=path, allow_version_labels_for_unavailable_models=True) as server:
        rollout, clients = _rollout(path, [server])
        with pytest.raises(RolloutError, match=r"no FID reference statistics.*nothing was changed"):
            analyze(rollout, 2, AnalysisConfig(window_s=0, seeds=4))
        clients[0].close()
    assert open(path).read() == before
    assert not os.path.exists(path + ".analysis.json")


def test_rules_on_given_figures():
    from serving.rollout.canary import PROMOTE, ROLLBACK, decide

    stable = {"requests": 100, "error_rate": 0.0, "p99_s": 0.010, "fid": 100.0}
    ok = {"requests": 100, "error_rate": 0.005, "p99_s": 0.019, "fid": 104.0}
    assert decide(stable, ok, 0.01, 2.0, 5.0)[0] == PROMOTE
    for change, rule in (({"error_rate": 0.02}, "error_rate"), ({"p99_s": 0.021}, "p99_latency"),
                         ({"fid": 105.5}, "fid"), ({"fid": None}, "fid"), ({"requests": 0}, "error_rate")):
        decision, checks = decide(stable, {**ok, **change}, 0.01, 2.0, 5.0)
        assert decision == ROLLBACK
        assert [c["rule"] for c in checks if not c["passed"]] == [rule]
    # An unmeasured stable figure fails the rule too (nothing to compare with).
    assert decide({**stable, "p99_s": None}, ok, 0.01, 2.0, 5.0)[0] == ROLLBACK
    # The FID margin (without --fid-margin): the gate's max_fid_regression recorded with the reference statistics,
    # else the allowance passed in, whose default is the pipeline's default gate.
    from pipeline.config import PipelineConfig
    from serving.rollout.canary import AnalysisConfig, default_fid_margin

    assert AnalysisConfig().max_fid_regression == PipelineConfig().evaluation.max_fid_regression == 0.0
    assert default_fid_margin({"max_fid_regression": 5.0}, 1.0)[0] == 5.0
    assert default_fid_margin({"max_fid_regression": None}, 1.0)[0] == 1.0
    with pytest.raises(ValueError, match="max_fid_regression=-1"):
        AnalysisConfig(max_fid_regression=-1.0).validate()


def test_histogram_quantile_and_prometheus_page_of_a_real_server(tiny_saved_model, tmp_path):
    from serving.client import ServingClient, ServingClientError
    from serving.rollout.canary import histogram_quantile, parse_metrics

    # 100 observations: 90 in (0, 0.01], 10 in (0.01, 0.1] → p99 at 0.01 + 0.09 × 9/10.
    assert histogram_quantile(0.99, {0.01: 90, 0.1: 100, float("inf"): 100}) == pytest.approx(0.091)
    assert histogram_quantile(0.99, {0.01: 0, float("inf"): 0}) is None
    assert histogram_quantile(0.5, {0.01: 0, float("inf"): 4}) == 0.01  # all beyond the last bound

    base = str(tmp_path / MODEL)
    add_version(tiny_saved_model, base, 7)
    with running_server(model_name=MODEL, model_base_path=base) as server:
        with ServingClient(server.grpc_target) as client:
            client.generate([1, 2, 3], model=MODEL)
            with pytest.raises(ServingClientError, match="NOT_FOUND"):
                client.generate([1], model=MODEL, version=99)
        page = urllib.request.urlopen(server.rest_url.rstrip("/") + "/monitoring/prometheus/metrics").read().decode()
    counts = parse_metrics(page, MODEL)
    assert counts["7"].requests == 1 and counts["7"].errors == 0
    assert counts["7"].buckets[float("inf")] == 1
    assert parse_metrics(page.replace("dcgan_serving", "tensorflow_serving"), MODEL) == {}


def test_reference_stats_round_trip_and_fid_matches_features(tmp_path, tiny_saved_model):
    from dcgan.metrics import scores
    from dcgan.metrics.reference import ReferenceStats, read_reference_stats, write_reference_stats

    rng = np.random.default_rng(1)
    real = rng.normal(size=(40, 2048)).astype(np.float32)
    generated = rng.normal(0.3, 1.2, size=(30, 2048)).astype(np.float32)
    folder = str(tmp_path / "model")
    shutil.copytree(tiny_saved_model, folder)
    write_reference_stats(folder, ReferenceStats.of(real, {"extractor": "x"}), max_fid_regression=2.0)
    stats = read_reference_stats(folder)
    assert stats.n == 40 and stats.factor.shape == (40, 2048) and stats.sigma is None
    assert stats.meta["max_fid_regression"] == 2.0 and stats.meta["extractor"] == "x"
    assert stats.fid(generated) == pytest.approx(scores.fid_from_features(generated, real), rel=1e-5)


def test_trainer_stores_reference_stats_of_the_eval_split(tmp_path, tiny_saved_model, image_folder):
    from types import SimpleNamespace

    from components.trainer_module import examples_split, store_reference_stats
    from dcgan.metrics.reference import read_reference_stats

    assert examples_split("/a/Examples/7/Split-eval/*") == ("/a/Examples/7", "eval")
    assert examples_split("s3://b/Examples/7/Split-holdout/*") == ("s3://b/Examples/7", "holdout")
    assert examples_split("/data/eval.tfrecord") == ("/data/eval.tfrecord", "eval")
    folder = str(tmp_path / "model")
    shutil.copytree(tiny_saved_model, folder)
    assert store_reference_stats(folder, SimpleNamespace(custom_config={}, eval_files=[image_folder])) == "off"
    option = {"num_real": 64, "seed": 0, "max_fid_regression": 25.0}
    meta = store_reference_stats(folder, SimpleNamespace(custom_config={"reference_stats": option},
                                                         eval_files=[image_folder]))
    assert meta["n"] == 64 and meta["max_fid_regression"] == 25.0
    assert read_reference_stats(folder).factor.shape == (64, 2048)
