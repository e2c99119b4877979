"""Shared fixtures: small real artefacts (an image folder, a trained run, an exported SavedModel) built once per
test session with the project's own code, so every suite tests against the real thing."""

from __future__ import annotations

import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import dcgan  # noqa: E402,F401 - first: switches TensorFlow's oneDNN kernels on for the tests and what they start

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ports import free_port  # noqa: E402,F401 - the tests import it from here

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.environ.get("TEST_ARTIFACTS", os.path.join(REPO, "test-artifacts"))


def dcgan_command() -> list[str]:
    """The `dcgan` console script of this environment, as a subprocess argv prefix."""
    return [sys.executable, "-m", "dcgan.cli"]


def write_synthetic_images(folder: str, n: int = 96, size: int = 40, seed: int = 0) -> str:
    """n RGB PNGs: a reddish background with a lighter disc ("a face"); mean colour ≈ (190, 70, 50)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        colour = np.array([190.0, 70.0, 50.0]) + rng.normal(0, 12, 3)
        img = np.ones((size, size, 3)) * colour
        cy, cx = size / 2 + rng.normal(0, 2, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (size / 4) ** 2
        img[disc] = np.clip(colour + 50, 0, 255)
        img += rng.normal(0, 4, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"img_{i:04d}.png"))
    return folder


@pytest.fixture(scope="session")
def artifacts_dir() -> str:
    """Where tests leave pictures and screenshots for people to look at (test-artifacts/, git-ignored)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> str:
    return write_synthetic_images(str(tmp_path_factory.mktemp("images")))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, image_folder) -> str:
    """A real run directory: 32×32 DCGAN with narrow widths, a few steps on the synthetic images, EMA on."""
    from dcgan.config import ModelConfig, TrainConfig
    from dcgan.train import Trainer

    run_dir = str(tmp_path_factory.mktemp("runs") / "tiny")
    config = TrainConfig(model=ModelConfig(size=32, ngf=8, ndf=8), data=image_folder, steps=6, batch_size=16,
                         log_every=2, sample_every=3, checkpoint_every=3, ema_decay=0.9, num_samples=16)
    Trainer(config, run_dir, progress=False).train()
    return run_dir


@pytest.fixture(scope="session")
def tiny_saved_model(tmp_path_factory, tiny_run) -> str:
    """The tiny run's generator exported as a SavedModel (all signatures)."""
    from dcgan.export import export_run

    return export_run(tiny_run, str(tmp_path_factory.mktemp("export") / "generator"))


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (moto) on loopback for the whole session; see tests/s3_server.py. Tests that use it skip on a
    stack without s3:// in TensorFlow (the current stack: no tensorflow-io for TF 2.21; see dcgan.stack)."""
    from dcgan import stack

    unsupported = stack.s3_support()
    if unsupported:
        pytest.skip(unsupported)
    from s3_server import s3_server as start

    with start() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process pointed at the loopback S3 server (AWS_ENDPOINT_URL and dummy credentials); returns the server."""
    for key, value in s3_server.environment.items():
        monkeypatch.setenv(key, value)
    return s3_server


# The longest modules, longest first (whole-module seconds in a cold CI log's --durations, AVX-512 machine,
# 2026-12-07, after the tfx.v1 import and the in-process data-validation runs; test_serving_config_s3 left the list
# when S3 config reads stopped building a client each: 32 s -> 2 s): started first, in this order, so that no long
# module starts last (a scheduling hint only: a module missing here still runs, after these and before the other
# modules marked slow).
LONGEST_MODULES = ("test_pipeline_interrupt", "test_setup_prerequisites", "test_pipeline", "test_data_validation",
                   "test_rollout_fleet_s3", "test_objstore_pipeline", "test_ingest_runners", "test_layering",
                   "test_multiworker", "test_serving_s3")


def pytest_collection_modifyitems(config, items):
    """The longest modules first (`LONGEST_MODULES`), then the other modules with `slow` tests, then the rest; each
    module's tests kept together and in their order. Under pytest-xdist (scripts/test.sh: --dist loadscope hands out
    whole modules as workers free up) a long module that starts last keeps one core busy while the other idles;
    started first, the short modules fill in around it."""
    has_slow = {item.module.__name__ for item in items if item.get_closest_marker("slow") is not None}
    first_seen = {}
    for item in items:
        first_seen.setdefault(item.module.__name__, len(first_seen))

    def rank(item) -> tuple[int, int]:
        name = item.module.__name__
        if name in LONGEST_MODULES:
            return 0, LONGEST_MODULES.index(name)
        return (1 if name in has_slow else 2), first_seen[name]

    items.sort(key=rank)


_exit_status = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


def pytest_unconfigure(config):
    """A session that used s3:// ends through dcgan.fileio.exit_process (tensorflow-io aborts at C++ exit); see below
    for the current stack."""
    import faulthandler

    from dcgan import fileio, stack

    if fileio.s3_was_used():
        fileio.exit_process(_exit_status["code"])
    if stack.name() == stack.CURRENT:
        # Known defect of the current stack (TF 2.21 / Python 3.13): after the session, the pytest process hangs in
        # native code during interpreter shutdown (faulthandler: main thread, "<no Python frame>"; every test passed,
        # the dcgan CLI processes exit normally). Leave with the session's status, streams flushed, as for S3 above.
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(_exit_status["code"])
    # Any other hang at exit fails after 120 s with every thread's stack on stderr instead of never ending.
    faulthandler.dump_traceback_later(120, exit=True)
