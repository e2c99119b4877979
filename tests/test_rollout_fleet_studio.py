"""The studio's traffic split during a rollout: `dcgan studio --canary-share S` sends that share of the requests that
name no label or version to `canary` (ServingClient's credit counter, not a second implementation), to the default
version while a model has no canary, and shows the split (counts per label) in /api/stats and /api/status. Against
a real model server on loopback serving versions 1 and 2 (stable 2 = the latest, canary 1)."""

from __future__ import annotations

import pytest
from serving_helpers import MODEL, add_version, running_server, write_config
from test_studio_api import ok, studio_client

pytestmark = pytest.mark.stack_neutral  # make test-current skips it (docs/development.md)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_saved_model):
    root = tmp_path_factory.mktemp("studio_split")
    base, other = str(root / "models" / MODEL), str(root / "models" / "other")
    for version in (1, 2):
        add_version(tiny_saved_model, base, version)
    add_version(tiny_saved_model, other, 1)
    config = write_config(str(root / "models.config"), [
        {"name": MODEL, "base_path": base, "policy": "all", "labels": {"stable": 2, "canary": 1}},
        {"name": "other", "base_path": other}])
    with running_server(model_config_file=config, allow_version_labels_for_unavailable_models=True) as server:
        yield server


def test_the_studio_sends_its_canary_share_of_unlabelled_requests_to_canary_and_shows_the_split(served):
    with studio_client(server=served.grpc_target, canary_share=0.25) as api:
        answers = [ok(api.post("/api/generate", json={"seed": i, "n": 1})) for i in range(8)]
        assert [a["version"] for a in answers].count(1) == 2 and [a["version"] for a in answers].count(2) == 6
        assert {a["label"] for a in answers if a["version"] == 1} == {"canary"}
        # Requests that name a label or a version are never split, nor counted.
        assert ok(api.post("/api/generate", json={"seed": 1, "n": 1, "label": "stable"}))["version"] == 2
        assert ok(api.post("/api/generate", json={"seed": 1, "n": 1, "version": 1}))["version"] == 1
        assert ok(api.get("/api/stats"))["split"] == {"canary_share": 0.25, "counts": {"canary": 2, "default": 6}}
        # A model without a canary label: its canary turns go to the default version.
        assert {ok(api.post("/api/generate", json={"seed": i, "n": 1, "model": "other"}))["version"]
                for i in range(4)} == {1}
        split = ok(api.get("/api/status"))["split"]
        assert split == {"canary_share": 0.25, "counts": {"canary": 2, "default": 10}}


def test_the_canary_share_is_validated(capsys):
    from dcgan.cli import main
    from serving.studio.config import StudioConfig

    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--canary-share must be within 0..1"):
            StudioConfig(canary_share=bad).validate()
    assert StudioConfig(canary_share=1.0).validate().canary_share == 1.0
    assert main(["studio", "--canary-share", "2", "--port", "0"]) == 2
    assert "--canary-share must be within 0..1" in capsys.readouterr().err
