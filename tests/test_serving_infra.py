"""Infra validation (InfraValidator LOAD_AND_QUERY without Docker): serve one SavedModel on free loopback ports,
query every signature over gRPC and REST, shut down, report — or say which check failed."""

from __future__ import annotations

import os

import pytest

from serving.model_server.infra import InfraValidationError, load_and_query


def test_load_and_query_serves_every_signature_over_grpc_and_rest(tiny_saved_model):
    report = load_and_query(tiny_saved_model, timeout_s=120)
    assert report["ok"] is True and report["version"] == 1
    assert set(report["signatures"]) == {"serving_default", "generate", "interpolate", "project"}
    assert report["signatures"]["serving_default"]["outputs"]["images"] == {"dtype": "float32",
                                                                             "shape": [1, 32, 32, 3]}
    assert report["signatures"]["generate"]["outputs"]["png_bytes"]["dtype"] == "bytes"
    assert report["signatures"]["interpolate"]["outputs"]["z"]["shape"] == [1, 100]
    assert all(s["grpc_ms"] > 0 and s["rest_ms"] > 0 for s in report["signatures"].values())


def test_load_and_query_refuses_a_corrupt_savedmodel(tmp_path):
    broken = tmp_path / "broken"
    os.makedirs(broken / "variables")
    (broken / "saved_model.pb").write_bytes(b"not a protobuf at all")
    with pytest.raises(InfraValidationError, match="could not load the SavedModel"):
        load_and_query(str(broken), timeout_s=60)


def test_load_and_query_refuses_a_directory_without_a_savedmodel(tmp_path):
    with pytest.raises(InfraValidationError, match="not a SavedModel directory"):
        load_and_query(str(tmp_path), timeout_s=10)
