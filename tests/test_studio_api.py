"""The studio's JSON API against a real model server serving the tiny generator (versions 1 and 2, labels stable=1
and canary=2, a directions.json in each version): every endpoint, label/version targeting, caching and batching,
the model-server-down answer, and the bad-input list (each a clear 4xx JSON error)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from conftest import free_port
from serving_helpers import MODEL, add_version, running_server, write_config

from dcgan.directions import FORMAT_V1 as FORMAT  # the fixtures are /1 files: the studio still reads them
from dcgan.directions import write_directions
from dcgan.images import decode_png
from dcgan.latent import z_from_seeds

pytestmark = pytest.mark.stack_neutral  # make test-current skips it (docs/development.md)

Z_DIM = 100
AMOUNTS = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


# -- helpers shared with the browser tests -----------------------------------------------------------------------------
def fake_directions(names: tuple[str, ...], seed: int, z_dim: int = Z_DIM) -> dict:
    """A directions.json document in the real format (dcgan.directions), with random unit vectors."""
    rng = np.random.default_rng(seed)
    attributes = {}
    for name in names:
        v = rng.standard_normal(z_dim)
        v /= np.linalg.norm(v)
        attributes[name] = {
            "definition": f"attr/{name} == 1", "vector": v.tolist(),
            "classifier": {"n": 40, "positives": 12, "accuracy": 0.9, "balanced_accuracy": 0.85},
            "positive_rate": {"real": 0.3, "generated": 0.25},
            "fit": {"split": "threshold", "with": 50, "without": 150, "raw_norm": 1.5},
            "effect": {"amounts": AMOUNTS, "mean_score": [0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.6],
                       "delta": [-0.15, -0.1, -0.05, 0.0, 0.1, 0.25, 0.35],
                       "positive_rate": [0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.6], "side_effects_at": 3.0,
                       "side_effects": {}},
        }
    return {"format": FORMAT, "z_dim": z_dim, "amounts": AMOUNTS, "attributes": attributes,
            "method": "test fixture: random unit vectors", "classifier": {}, "data": {}}


def visible_tiny_model(tmp_path_factory, tiny_run) -> str:
    """The tiny run's generator with the weights of its output layer scaled up, exported with dcgan.export.

    Six training steps leave the tiny generator's tanh output within about ±0.01: every face is the same flat grey
    (pixel values 127-128), and "not blank", "the slider changed the face" or "the same pixels" would prove
    nothing. Scaling the last layer (kernel and bias) spreads the output over about ±0.6 while keeping everything
    else — architecture, signatures, export path — the tiny model's. Built once per session (both studio test
    modules use it)."""
    out = tmp_path_factory.getbasetemp() / "studio_visible_model"
    if (out / "saved_model.pb").is_file():
        return str(out)
    from dcgan.export import export_generator
    from dcgan.run import load_models

    models = load_models(tiny_run, precision="float32")
    generator = models.sampling_generator
    spread = float(np.std(generator(z_from_seeds(list(range(32)), Z_DIM), training=False)))
    layer = generator.get_layer("to_image")
    layer.set_weights([w * (0.6 / max(spread, 1e-6)) for w in layer.get_weights()])
    return export_generator(generator, models.config.model, str(out), {"note": "tiny model, output layer scaled"})


def served_models(root, saved_model: str) -> tuple[str, str]:
    """<root>/models/dcgan/{1,2} (copies of the generator, each with a directions.json) and a models.config
    with policy all, stable=1, canary=2. Returns (base path, config path)."""
    base = str(root / "models" / MODEL)
    for version, names in ((1, ("Eyeglasses", "Smiling")), (2, ("Smiling",))):
        path = add_version(saved_model, base, version)
        write_directions(path, fake_directions(names, seed=version))
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base, "policy": "all",
                                                         "labels": {"stable": 1, "canary": 2}}])
    return base, config


def pixels(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,"), data_url[:40]
    return decode_png(base64.b64decode(data_url.split(",", 1)[1]))


# -- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def studio_model(tmp_path_factory, tiny_run) -> str:
    return visible_tiny_model(tmp_path_factory, tiny_run)


@pytest.fixture(scope="module")
def served(tmp_path_factory, studio_model):
    root = tmp_path_factory.mktemp("studio_api")
    base, config = served_models(root, studio_model)
    with running_server(model_config_file=config, allow_version_labels_for_unavailable_models=True) as server:
        yield SimpleNamespace(server=server, base=base, root=root)


@contextlib.contextmanager
def studio_client(**config):
    """A studio (uvicorn in a thread, any free port) and an HTTP client on it; both stopped on exit."""
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer

    with StudioServer(StudioConfig(port=0, **config)) as studio:
        with httpx.Client(base_url=studio.url, timeout=60) as client:
            yield client


@pytest.fixture(scope="module")
def api(served):
    with studio_client(server=served.server.grpc_target, model_base_path=served.base) as client:
        yield client


@pytest.fixture(scope="module")
def faces(api):
    r = api.post("/api/generate", json={"seed": 7, "n": 6})
    assert r.status_code == 200, r.text
    return r.json()["faces"]


def ok(response) -> dict:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def error(response, status: int) -> dict:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


# -- the endpoints ----------------------------------------------------------------------------------------------------
def test_config_names_the_server_defaults_labels_and_limits(api, served):
    c = ok(api.get("/api/config"))
    assert c["server"] == served.server.grpc_target and c["model"] == MODEL and c["label"] is None
    assert c["labels"] == ["stable", "canary"]
    assert c["limits"]["max_faces"] == 64 and c["limits"]["max_body_bytes"] == 1 << 20
    assert c["directions"] == {"model_base_path": served.base, "file": None}


def test_status_lists_the_versions_and_the_one_answering_each_target(api):
    s = ok(api.get("/api/status"))
    assert s["reachable"] is True
    assert sorted(v["version"] for v in s["versions"]) == [1, 2]
    assert all(v["state"] == "AVAILABLE" for v in s["versions"])
    assert s["serving"] == {"model": MODEL, "version": 2, "label": None, "z_dim": Z_DIM, "image_shape": [32, 32, 3]}
    assert ok(api.get("/api/status?label=stable"))["serving"]["version"] == 1
    assert ok(api.get("/api/status?version=2"))["serving"]["version"] == 2


def test_generate_returns_faces_with_the_z_of_each_seed(api, faces):
    assert [f["seed"] for f in faces] == list(range(7, 13))
    np.testing.assert_allclose([f["z"] for f in faces], z_from_seeds(list(range(7, 13)), Z_DIM), atol=1e-6)
    pictures = [pixels(f["png"]) for f in faces]
    assert all(p.shape == (32, 32, 3) for p in pictures)
    assert all(p.std() > 10.0 for p in pictures), "a generated face is blank"
    assert not np.array_equal(pictures[0], pictures[1])


def test_label_and_version_pick_the_version_that_answers(api):
    assert ok(api.post("/api/generate", json={"n": 1}))["version"] == 2
    assert ok(api.post("/api/generate", json={"n": 1, "label": "stable"}))["version"] == 1
    assert ok(api.post("/api/generate", json={"n": 1, "label": "canary"}))["version"] == 2
    assert ok(api.post("/api/generate", json={"n": 1, "version": 1}))["version"] == 1
    assert ok(api.post("/api/generate", json={"n": 1, "label": ""}))["version"] == 2  # "" = latest


def test_default_label_comes_from_the_command_line(served):
    with studio_client(server=served.server.grpc_target, label="stable") as client:
        assert ok(client.post("/api/generate", json={"n": 1}))["version"] == 1
        assert ok(client.post("/api/generate", json={"n": 1, "label": ""}))["version"] == 2


def test_the_z_of_a_face_regenerates_the_same_pixels_through_the_model(served, faces):
    # A studio without a cache, so the z really goes through serving_default (not the cached generate answer).
    with studio_client(server=served.server.grpc_target, cache_faces=0) as client:
        rendered = ok(client.post("/api/images", json={"z": [f["z"] for f in faces]}))["faces"]
        one = ok(client.post("/api/images", json={"z": faces[2]["z"]}))["faces"]  # a single z works too
    for face, again in zip(faces, rendered):
        np.testing.assert_array_equal(pixels(again["png"]), pixels(face["png"]))
        assert again["z"] == face["z"] and "seed" not in again
    np.testing.assert_array_equal(pixels(one[0]["png"]), pixels(faces[2]["png"]))


def test_interpolation_ends_on_the_two_faces_and_follows_slerp_or_lerp(api, faces):
    from dcgan.latent import slerp

    z0, z1 = np.array(faces[0]["z"], np.float32), np.array(faces[1]["z"], np.float32)
    walk = ok(api.post("/api/interpolate", json={"z0": faces[0]["z"], "z1": faces[1]["z"], "steps": 5}))
    assert walk["method"] == "slerp" and [f["t"] for f in walk["frames"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    frames = walk["frames"]
    assert frames[0]["z"] == faces[0]["z"] and frames[-1]["z"] == faces[1]["z"]
    np.testing.assert_array_equal(pixels(frames[0]["png"]), pixels(faces[0]["png"]))
    np.testing.assert_array_equal(pixels(frames[-1]["png"]), pixels(faces[1]["png"]))
    np.testing.assert_allclose([f["z"] for f in frames], slerp(z0, z1, np.linspace(0, 1, 5)), atol=1e-5)

    lerp = ok(api.post("/api/interpolate", json={"z0": faces[0]["z"], "z1": faces[1]["z"], "steps": 3,
                                                 "method": "lerp"}))["frames"]
    np.testing.assert_allclose(lerp[1]["z"], (z0 + z1) / 2, atol=1e-6)
    np.testing.assert_array_equal(pixels(lerp[0]["png"]), pixels(faces[0]["png"]))
    np.testing.assert_array_equal(pixels(lerp[-1]["png"]), pixels(faces[1]["png"]))
    # The slerp midpoint keeps the norm of a typical z; the straight line cuts through the low-norm middle.
    assert np.linalg.norm(frames[2]["z"]) > np.linalg.norm(lerp[1]["z"]) + 0.5


def test_arithmetic_is_mean_a_minus_mean_b_plus_mean_c(api, faces):
    z = np.array([f["z"] for f in faces], np.float32)
    a, b, c = z[0:2], z[2:4], z[4:6]
    out = ok(api.post("/api/arithmetic", json={"a": a.tolist(), "b": b.tolist(), "c": c.tolist(),
                                               "variations": 3, "seed": 1}))
    expected = a.mean(0) - b.mean(0) + c.mean(0)
    np.testing.assert_allclose(out["result"]["z"], expected, atol=1e-5)
    for name, group in (("a", a), ("b", b), ("c", c)):
        np.testing.assert_allclose(out["means"][name]["z"], group.mean(0), atol=1e-6)
    assert out["counts"] == {"a": 2, "b": 2, "c": 2} and len(out["variations"]) == 3
    for v in out["variations"]:
        offset = np.array(v["z"]) - np.array(out["result"]["z"])
        assert 0 < np.abs(offset).max() <= 0.25 + 1e-6  # the paper's ±0.25 uniform noise
    again = ok(api.post("/api/images", json={"z": out["result"]["z"]}))["faces"][0]
    np.testing.assert_array_equal(pixels(again["png"]), pixels(out["result"]["png"]))
    single = ok(api.post("/api/arithmetic", json={"a": a[0].tolist(), "b": b[0].tolist(), "c": c[0].tolist()}))
    np.testing.assert_allclose(single["result"]["z"], a[0] - b[0] + c[0], atol=1e-5)
    assert single["variations"] == []


def test_directions_come_from_the_answering_versions_folder(api, served):
    latest = ok(api.get("/api/directions"))
    assert latest["version"] == 2 and latest["available"] and latest["source"] == "model_base_path"
    assert latest["path"] == os.path.join(served.base, "2", "assets.extra", "directions.json")
    assert [d["name"] for d in latest["directions"]] == ["Smiling"]
    assert latest["amount_range"] == [-3.0, 3.0]
    stable = ok(api.get("/api/directions?label=stable"))
    assert stable["version"] == 1 and [d["name"] for d in stable["directions"]] == ["Eyeglasses", "Smiling"]
    entry = stable["directions"][0]
    assert "vector" not in entry and entry["classifier"]["balanced_accuracy"] == 0.85
    assert entry["effect"]["amounts"] == AMOUNTS


def test_directions_from_a_file_or_none_with_a_note(served, tmp_path):
    path = write_directions(str(tmp_path), fake_directions(("Bald",), seed=5), str(tmp_path / "d.json"))
    with studio_client(server=served.server.grpc_target, directions_file=path) as client:
        d = ok(client.get("/api/directions?label=stable"))
        assert d["source"] == "file" and [x["name"] for x in d["directions"]] == ["Bald"]
    with studio_client(server=served.server.grpc_target) as client:
        d = ok(client.get("/api/directions"))
        assert d["available"] is False and d["directions"] == [] and "--model-base-path" in d["note"]
        assert "Custom directions" in d["note"]
    wrong = write_directions(str(tmp_path), fake_directions(("Bald",), seed=5, z_dim=8), str(tmp_path / "w.json"))
    with studio_client(server=served.server.grpc_target, directions_file=wrong) as client:
        d = ok(client.get("/api/directions"))
        assert d["available"] is False and "z of length 8, but the model takes 100" in d["note"]


def test_move_along_named_and_custom_directions(api, served, faces):
    with open(os.path.join(served.base, "1", "assets.extra", "directions.json")) as f:
        vectors = {k: np.array(v["vector"]) for k, v in json.load(f)["attributes"].items()}
    z = np.array(faces[0]["z"], np.float64)
    moved = ok(api.post("/api/move", json={"label": "stable", "z": faces[0]["z"],
                                           "moves": [{"direction": "Eyeglasses", "amount": 2.5}]}))
    assert moved["version"] == 1 and moved["moves"] == [{"direction": "Eyeglasses", "amount": 2.5}]
    np.testing.assert_allclose(moved["z"], z + 2.5 * vectors["Eyeglasses"], atol=1e-5)
    assert np.abs(pixels(moved["png"]).astype(int) - pixels(faces[0]["png"])).mean() > 0.5, "moving changed nothing"
    custom = np.random.default_rng(3).standard_normal(Z_DIM)
    both = ok(api.post("/api/move", json={"label": "stable", "z": faces[0]["z"], "moves": [
        {"direction": "Smiling", "amount": -1}, {"vector": custom.tolist(), "amount": 0.5}]}))
    np.testing.assert_allclose(both["z"], z - vectors["Smiling"] + 0.5 * custom, atol=1e-5)
    zero = ok(api.post("/api/move", json={"z": faces[0]["z"], "moves": [{"direction": "Smiling", "amount": 0}]}))
    np.testing.assert_array_equal(pixels(zero["png"]), pixels(faces[0]["png"]))


def test_custom_direction_is_the_unit_mean_difference(api, faces):
    z = np.array([f["z"] for f in faces], np.float64)
    out = ok(api.post("/api/directions/custom", json={"with": z[:3].tolist(), "without": z[3:].tolist()}))
    raw = z[:3].mean(0) - z[3:].mean(0)
    np.testing.assert_allclose(out["vector"], raw / np.linalg.norm(raw), atol=1e-6)
    assert out["raw_norm"] == pytest.approx(np.linalg.norm(raw), rel=1e-5)
    assert out["counts"] == {"with": 3, "without": 3}


def test_repeated_requests_are_answered_from_the_cache(api):
    before = ok(api.get("/api/stats"))
    first = ok(api.post("/api/generate", json={"seed": 500, "n": 4}))
    mid = ok(api.get("/api/stats"))
    second = ok(api.post("/api/generate", json={"seed": 500, "n": 4}))
    after = ok(api.get("/api/stats"))
    assert first["faces"] == second["faces"]
    assert mid["faces"]["misses"] - before["faces"]["misses"] == 4
    assert after["faces"]["hits"] - mid["faces"]["hits"] == 4 and after["faces"]["misses"] == mid["faces"]["misses"]
    # The z of a generated face is cached too: pasting it back costs no model call.
    calls = after["batching"]["predict_calls"]
    ok(api.post("/api/images", json={"z": first["faces"][0]["z"]}))
    assert ok(api.get("/api/stats"))["batching"]["predict_calls"] == calls


def test_concurrent_image_requests_share_one_model_call():
    from serving.studio.backend import ImageBatcher

    calls = []

    def predict(model, version, z):
        calls.append((model, version, len(z)))
        return [f"{model}:{version}:{row[0]:g}" for row in z]

    async def scenario():
        batcher = ImageBatcher(predict, window_s=0.05, max_rows=8)
        rows = [np.full((n, 2), i, np.float32) for i, n in enumerate((1, 2, 3))]
        same = await asyncio.gather(*(batcher.run("m", 1, r) for r in rows))
        other = await asyncio.gather(batcher.run("m", 2, rows[0]), batcher.run("m", 1, np.zeros((9, 2), np.float32)))
        return same, other, batcher.stats()

    same, other, stats = asyncio.run(scenario())
    assert same == [["m:1:0"], ["m:1:1", "m:1:1"], ["m:1:2"] * 3]  # each caller gets its own rows back
    assert calls[0] == ("m", 1, 6)                                   # three requests, one call
    assert other[0] == ["m:2:0"] and len(other[1]) == 9               # versions never share a call
    assert stats == {"predict_calls": 3, "rows": 16, "requests": 5}


def test_the_batcher_hands_a_model_failure_to_every_waiting_request():
    from serving.studio.backend import ImageBatcher

    def predict(model, version, z):
        raise RuntimeError("boom")

    async def scenario():
        batcher = ImageBatcher(predict, window_s=0.01, max_rows=8)
        return await asyncio.gather(*(batcher.run("m", 1, np.zeros((1, 2), np.float32)) for _ in range(3)),
                                    return_exceptions=True)

    assert [str(e) for e in asyncio.run(scenario())] == ["boom"] * 3


def test_page_and_static_files_are_served_with_a_strict_content_security_policy(api):
    page = api.get("/")
    assert page.status_code == 200 and "DCGAN studio" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text, "the page must not load anything remote"
    for asset in ("/static/studio.js", "/static/studio.css"):
        r = api.get(asset)
        assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text
    paths = ok(api.get("/api/openapi.json"))["paths"]
    assert {"/api/generate", "/api/images", "/api/interpolate", "/api/arithmetic", "/api/move", "/api/directions",
            "/api/directions/custom", "/api/status", "/api/config", "/api/stats"} <= set(paths)
    generate = paths["/api/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"seed", "n", "model", "label", "version"} <= set(generate["properties"])  # typed request models
    assert "with" in paths["/api/directions/custom"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    assert api.get("/api/docs").status_code == 404  # FastAPI's Swagger UI loads from a CDN: not offered


# -- bad input --------------------------------------------------------------------------------------------------------
Z = [0.0] * Z_DIM
BAD_REQUESTS = [
    ("/api/generate", {"n": 0}, 400, "n must be between 1 and 64 (got 0)"),
    ("/api/generate", {"n": 65}, 400, "n must be between 1 and 64 (got 65)"),
    ("/api/generate", {"seed": -1}, 400, "seed must be between 0 and"),
    ("/api/generate", {"seed": "seven"}, 400, "seed: Input should be a valid integer"),
    ("/api/generate", {"n": 2.5}, 400, "n: Input should be a valid integer"),
    ("/api/generate", {"count": 3}, 400, "unknown field 'count'"),
    ("/api/generate", {"label": "stable", "version": 1}, 400, "give a label or a version, not both"),
    ("/api/generate", {"model": "../etc"}, 400, "model '../etc' is not a valid name"),
    ("/api/images", {}, 400, "z is required"),
    ("/api/images", {"z": []}, 400, "z must be a list of 100 numbers"),
    ("/api/images", {"z": [0.0] * 99}, 400, "z has 99 values; model 'dcgan' version 2 takes z of length 100"),
    ("/api/images", {"z": [Z, [0.0] * 101]}, 400, "z[1] has 101 values"),
    ("/api/images", {"z": [Z] * 65}, 400, "z has 65 vectors; at most 64 per request"),
    ("/api/images", {"z": ["a"] + Z[1:]}, 400, 'z[0] must be a number, got "a"'),
    ("/api/images", {"z": [True] + Z[1:]}, 400, "z[0] must be a number, got true"),
    ("/api/images", {"z": [Z, 3]}, 400, "z[1] must be a list of 100 numbers"),
    ("/api/images", {"z": [1e6] + Z[1:]}, 400, "z[0] = 1e+06 is outside ±100"),
    ("/api/images", "NAN", 400, "z[0][3] is NaN: z values must be finite numbers"),
    ("/api/images", "INF", 400, "z[0][3] is Infinity: z values must be finite numbers"),
    ("/api/interpolate", {"z0": Z, "z1": Z, "steps": 1}, 400, "steps must be between 2 and 32 (got 1)"),
    ("/api/interpolate", {"z0": Z, "z1": Z, "steps": 33}, 400, "steps must be between 2 and 32 (got 33)"),
    ("/api/interpolate", {"z0": Z, "z1": Z, "method": "cubic"}, 400, "method must be 'slerp' or 'lerp'"),
    ("/api/interpolate", {"z0": Z}, 400, "z1 is required"),
    ("/api/interpolate", {"z0": [Z, Z], "z1": Z}, 400, "z0 has 2 vectors; at most 1 per request"),
    ("/api/arithmetic", {"a": [], "b": Z, "c": Z}, 400, "a must be a list of 100 numbers"),
    ("/api/arithmetic", {"a": Z, "b": [0.0] * 3, "c": Z}, 400, "b has 3 values"),
    ("/api/arithmetic", {"a": [Z] * 17, "b": Z, "c": Z}, 400, "a has 17 vectors; at most 16"),
    ("/api/arithmetic", {"a": Z, "b": Z, "c": Z, "variations": 9}, 400, "variations must be between 0 and 8"),
    ("/api/arithmetic", {"a": Z, "b": Z, "c": Z, "noise": -1}, 400, "noise must be between 0 and 2"),
    ("/api/move", {"z": Z, "moves": [{"direction": "Smiling", "amount": 11}]}, 400,
     "moves[0].amount must be between -10 and 10 (got 11)"),
    ("/api/move", {"z": Z, "moves": [{"amount": 1}]}, 400, "moves[0] needs either 'direction'"),
    ("/api/move", {"z": Z, "moves": [{"direction": "Smiling", "vector": Z, "amount": 1}]}, 400,
     "moves[0] needs either 'direction'"),
    ("/api/move", {"z": Z, "moves": [{"direction": "Wings", "amount": 1}]}, 400,
     "moves[0].direction 'Wings' is not a direction of version 2; known: Smiling"),
    ("/api/move", {"z": Z, "moves": [{"vector": [1.0], "amount": 1}]}, 400, "moves[0].vector has 1 values"),
    ("/api/move", {"z": Z, "moves": [{"direction": "Smiling", "amount": 1}] * 17}, 400,
     "moves has 17 entries; at most 16"),
    ("/api/move", {"z": Z, "moves": [{"direction": "Smiling"}]}, 400, "moves.0.amount is required"),
    ("/api/move", "AMOUNT_NAN", 400, "moves.0.amount: Input should be a finite number"),
    ("/api/directions/custom", {"with": [Z], "without": [Z]}, 400, "the faces 'with' and 'without' have the same "
                                                                    "mean z"),
    ("/api/directions/custom", {"with": [], "without": [Z]}, 400, "with must be a list"),
]


@pytest.mark.parametrize("path,body,status,message", BAD_REQUESTS,
                         ids=[f"{p.rsplit('/', 1)[-1]}:{m[:40]}" for p, _, _, m in BAD_REQUESTS])
def test_bad_input_is_a_clear_4xx_json_error(api, path, body, status, message):
    if body == "NAN":
        raw = '{"z": [[0, 0, 0, NaN' + ", 0" * 96 + "]]}"
    elif body == "INF":
        raw = '{"z": [[0, 0, 0, Infinity' + ", 0" * 96 + "]]}"
    elif body == "AMOUNT_NAN":
        raw = '{"z": [' + ", ".join(["0"] * Z_DIM) + '], "moves": [{"direction": "Smiling", "amount": NaN}]}'
    else:
        raw = json.dumps(body)
    e = error(api.post(path, content=raw, headers={"content-type": "application/json"}), status)
    assert message in e["message"], e
    assert ok(api.post("/api/generate", json={"n": 1}))["faces"], "the studio stopped answering after a bad request"


def test_malformed_bodies_wrong_content_types_and_unknown_paths(api):
    e = error(api.post("/api/generate", content="{not json", headers={"content-type": "application/json"}), 400)
    assert e["message"].startswith("the body is not valid JSON")
    e = error(api.post("/api/generate", content="[1, 2]", headers={"content-type": "application/json"}), 400)
    assert e["message"] == "the body must be a JSON object"
    e = error(api.post("/api/generate", content="n=3", headers={"content-type": "application/x-www-form-urlencoded"}),
              415)
    assert "Content-Type: application/json" in e["message"]
    assert error(api.get("/api/nothing"), 404)["code"] == "not_found"
    assert error(api.get("/api/generate"), 405)["code"] == "method_not_allowed"
    assert error(api.get("/api/status?version=x"), 400)["field"] == "version"


BAD_QUERIES = [
    ({"version": "²"}, "version"),                # str.isdigit() is True, int() refuses it
    ({"version": "9" * 40}, "version"),           # beyond int64: the model server cannot be asked for it
    ({"version": str(2**63)}, "version"),
    ({"version": "-1"}, "version"),
    ({"version": "1.5"}, "version"),
    ({"model": "../etc"}, "model"),
    ({"label": "x" * 200}, "label"),
    ({"label": "stable", "version": "1"}, "version"),
]


@pytest.mark.parametrize("endpoint", ["/api/status", "/api/directions"])
@pytest.mark.parametrize("query,field", BAD_QUERIES, ids=[f"{k}={str(v)[:12]}" for q, _ in BAD_QUERIES
                                                        for k, v in list(q.items())[-1:]])
def test_bad_query_parameters_are_a_400_naming_the_parameter(api, endpoint, query, field):
    e = error(api.get(endpoint, params=query), 400)
    assert e["field"] == field and field in e["message"], e
    latest = ok(api.get(endpoint, params={"version": "", "label": ""}))  # empty = not given: the latest version
    assert latest.get("serving", latest)["version"] == 2


def test_unknown_model_label_or_version_is_reported_by_name(api):
    e = error(api.post("/api/generate", json={"model": "nope"}), 404)
    assert e["code"] == "model_not_found" and "nope" in e["message"]
    e = error(api.post("/api/generate", json={"label": "beta"}), 400)
    assert e["code"] == "unknown_label" and "beta" in e["message"]
    assert error(api.post("/api/generate", json={"version": 99}), 404)["code"] == "model_not_found"


def test_a_body_over_the_limit_is_refused_with_413(served):
    from serving.studio.config import Limits, StudioConfig
    from serving.studio.server import StudioServer

    config = StudioConfig(server=served.server.grpc_target, port=0, limits=Limits(max_body_bytes=4096))
    with StudioServer(config) as studio, httpx.Client(base_url=studio.url, timeout=30) as http:
        big = json.dumps({"z": [[0.123456789] * Z_DIM] * 8})
        e = error(http.post("/api/images", content=big, headers={"content-type": "application/json"}), 413)
        assert e["code"] == "body_too_large" and "4096 bytes" in e["message"]

        def chunks():  # no Content-Length: the limit holds for streamed bodies too
            for _ in range(8):
                yield big[:1024].encode()
        r = http.post("/api/images", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "content-length" not in r.request.headers, r.text
        assert ok(http.post("/api/generate", json={"n": 1}))["faces"]


def test_model_server_down_is_a_503_with_a_clear_message(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    with studio_client(server=dead) as client:
        for call in (lambda: client.post("/api/generate", json={"n": 2}), lambda: client.get("/api/status"),
                     lambda: client.get("/api/directions"), lambda: client.post("/api/images", json={"z": Z})):
            e = error(call(), 503)  # how fast: bench/behaviour_timings.py
            assert e["code"] == "model_server_unavailable" and dead in e["message"], e
            assert "dcgan serve" in e["message"] and e["server"] == dead
        assert client.get("/").status_code == 200 and ok(client.get("/api/config"))["server"] == dead


def test_studio_comes_back_when_the_model_server_starts(studio_model, tmp_path):
    port = free_port()
    base = str(tmp_path / "models" / MODEL)
    add_version(studio_model, base, 1)
    with studio_client(server=f"127.0.0.1:{port}") as client:
        assert error(client.post("/api/generate", json={"n": 1}), 503)["code"] == "model_server_unavailable"
        with running_server(port=port, rest_api_port=0, model_name=MODEL, model_base_path=base):
            deadline = time.monotonic() + 60  # a bound on the wait, not a speed claim (about a second when quiet)
            while True:  # the studio's channel reconnects by itself
                r = client.post("/api/generate", json={"n": 1})
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert ok(r)["version"] == 1


def test_config_is_validated_and_binds_loopback_by_default(tmp_path):
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer, StudioServerError

    assert StudioConfig().host == "127.0.0.1"
    with pytest.raises(ValueError, match="--server must be HOST:PORT"):
        StudioConfig(server="nowhere").validate()
    with pytest.raises(ValueError, match="--model-base-path .* is not a directory"):
        StudioConfig(model_base_path=str(tmp_path / "missing")).validate()
    for value in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--timeout must be a positive number of seconds"):
            StudioConfig(timeout_s=value).validate()
    with pytest.raises(ValueError, match="--cache-faces must be >= 0"):
        StudioConfig(cache_faces=-1).validate()
    with StudioServer(StudioConfig(port=0)) as first:
        assert first.url.startswith("http://127.0.0.1:")
        with pytest.raises(StudioServerError, match="cannot listen on 127.0.0.1:.*pick another --port"):
            StudioServer(StudioConfig(port=first.port)).bind()


def test_studio_cli_module_does_not_import_tensorflow():
    out = subprocess.run([sys.executable, "-c", "import sys, serving.studio.cli, serving.studio.config; "
                          "print('TF', 'tensorflow' in sys.modules, 'fastapi' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "TF False False" in out.stdout


def test_dcgan_studio_command_serves_the_page_and_stops_on_sigterm(served):
    import signal

    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "dcgan.cli", "studio", "--server", served.server.grpc_target,
                             "--port", str(port), "--model-base-path", served.base, "--label", "stable"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert f"DCGAN studio at http://127.0.0.1:{port}/" in line, (line, proc.stderr.read() if proc.poll() else "")
        assert "label stable" in line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/").status_code == 200
            assert ok(http.post("/api/generate", json={"n": 1}))["version"] == 1
            assert ok(http.get("/api/directions"))["available"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_dcgan_studio_refuses_a_bad_server_address(capsys):
    from dcgan.cli import main

    assert main(["studio", "--server", "no-port-here"]) == 2
    assert "--server must be HOST:PORT" in capsys.readouterr().err
