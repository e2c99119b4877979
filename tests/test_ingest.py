"""components.ingest on the in-process DirectRunner: sources, the example schema written, splits and shards,
determinism, the report, the `dcgan ingest` command, and training from what it wrote."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from components.ingest import report as reportlib
from components.ingest import sources
from components.ingest.config import IngestConfig, IngestError
from components.ingest.pipeline import plan_ingest, prepare_output, run_ingest, shard_counts, shard_name, split_of
from dcgan import avatars, quality, schema
from dcgan import images as imlib


def _records(examples_dir: str, split: str) -> list[dict]:
    return schema.read_examples(sorted(glob.glob(schema.split_pattern(examples_dir, split))))


def _shard_bytes(examples_dir: str) -> dict[str, bytes]:
    return {os.path.relpath(p, examples_dir): open(p, "rb").read()
            for p in sorted(glob.glob(os.path.join(examples_dir, "Split-*", "*")))}


@pytest.fixture(scope="module")
def avatar_ingest(tmp_path_factory):
    """48 avatars at 32×32, 25% eval, at most 10 examples per shard (so several shards per split)."""
    out = str(tmp_path_factory.mktemp("ingest") / "avatars")
    config = IngestConfig(source="avatars:48:3", size=32, eval_ratio=0.25, records_per_shard=10, preview_count=16)
    return config, out, run_ingest(config, out)


def test_avatar_ingest_writes_the_example_schema(avatar_ingest):
    config, out, report = avatar_ingest
    train, evaluation = _records(out, "train"), _records(out, "eval")
    assert len(train) + len(evaluation) == 48
    assert len(train) == report.written["train"] and len(evaluation) == report.written["eval"]
    assert 4 <= len(evaluation) <= 20, f"{len(evaluation)} of 48 in eval for eval_ratio 0.25"
    for r in train + evaluation:
        image = imlib.decode_png(r[schema.IMAGE_KEY])
        assert image.shape == (32, 32, 3) and (r[schema.HEIGHT_KEY], r[schema.WIDTH_KEY]) == (32, 32)
        assert r[schema.SHA256_KEY] == hashlib.sha256(r[schema.IMAGE_KEY]).hexdigest()
        assert r[schema.SOURCE_KEY] == "avatars:48:3"
        index = int(r[schema.ID_KEY].rsplit("-", 1)[1])
        assert r[schema.ID_KEY] == avatars.avatar_id(3, index)
        assert r["attributes"] == avatars.avatar_attributes(3, index), "labels must travel with their image"
        np.testing.assert_array_equal(image, avatars.generate_avatar(3, index, 32)[0])
        assert split_of(r[schema.SHA256_KEY], 0.25, config.seed) == ("train" if r in train else "eval")


def test_avatar_examples_carry_the_version_2_features(avatar_ingest):
    _, out, _ = avatar_ingest
    for r in _records(out, "train") + _records(out, "eval"):
        features = r["features"]
        assert r[schema.SCHEMA_VERSION_KEY] == 2
        assert set(features) == {*schema.QUALITY_KEYS, schema.SOURCE_HEIGHT_KEY, schema.SOURCE_WIDTH_KEY}, \
            "avatars are not aligned on a face: quality and source features only"
        assert (features[schema.SOURCE_HEIGHT_KEY], features[schema.SOURCE_WIDTH_KEY]) == (32, 32)
        expected = quality.image_features(imlib.decode_png(r[schema.IMAGE_KEY]))
        for name, value in expected.items():
            written = features[schema.QUALITY_PREFIX + name]
            assert written == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), name


def test_inputs_split_has_one_row_per_input_sorted_by_id(avatar_ingest):
    _, out, _ = avatar_ingest
    assert sorted(glob.glob(schema.split_pattern(out, schema.INPUTS_SPLIT))) == \
        [os.path.join(out, "Split-inputs", f"data-00000-of-00001{schema.FILE_SUFFIX}")]
    rows = _records(out, schema.INPUTS_SPLIT)
    ids = [r[schema.ID_KEY] for r in rows]
    assert ids == sorted(ids) and len(ids) == 48
    assert set(ids) == {r[schema.ID_KEY] for r in _records(out, "train") + _records(out, "eval")}
    for r in rows:
        assert schema.IMAGE_KEY not in r
        assert r["features"] == {schema.OUTCOME_KEY: schema.ACCEPTED, schema.SOURCE_HEIGHT_KEY: 32,
                                 schema.SOURCE_WIDTH_KEY: 32}


def test_prepare_output_clears_a_stale_inputs_split(tmp_path):
    out = tmp_path / "out"
    (out / "Split-inputs").mkdir(parents=True)
    (out / "Split-inputs" / "stale.tfrecord.gz").write_bytes(b"old")
    with pytest.raises(IngestError, match="already holds an ingest output"):
        prepare_output(str(out), str(out), overwrite=False)
    prepare_output(str(out), str(out), overwrite=True)
    assert not (out / "Split-inputs").exists()


def test_shards_are_named_sorted_and_sized(avatar_ingest):
    config, out, _ = avatar_ingest
    shards = shard_counts(48, config.eval_ratio, config.records_per_shard)
    assert shards == {"train": 4, "eval": 2}  # ceil(48·0.75/10), ceil(48·0.25/10)
    for split, n in shards.items():
        expected = sorted(os.path.join(out, shard_name(split, i, n)) for i in range(n))
        assert sorted(glob.glob(schema.split_pattern(out, split))) == expected
        for path in expected:
            ids = [r[schema.ID_KEY] for r in schema.read_examples([path])]
            assert ids == sorted(ids), f"records of {path} are not sorted by id"
    assert not os.path.exists(os.path.join(out, ".ingest-tmp")), "temporary files must be cleaned up"


def test_same_input_gives_byte_identical_shards(avatar_ingest, tmp_path):
    config, out, _ = avatar_ingest
    again = str(tmp_path / "again")
    run_ingest(config, again)
    assert _shard_bytes(again) == _shard_bytes(out)


def test_report_json_text_and_preview(avatar_ingest):
    _, out, report = avatar_ingest
    with open(os.path.join(out, reportlib.REPORT_JSON)) as f:
        data = json.load(f)
    assert data["format"] == reportlib.FORMAT
    counts = data["counts"]
    assert counts["input"] == 48 == counts["written"] + counts["rejected"]
    assert counts["train"] + counts["eval"] == counts["written"]
    assert data["config"]["size"] == 32 and data["runner"].startswith("DirectRunner")
    assert data["elapsed_seconds"] > 0
    assert set(data["attributes"]) == set(avatars.ATTRIBUTE_NAMES)
    assert data["preview"]["ids"] == [avatars.avatar_id(3, i) for i in range(16)]
    assert reportlib.IngestReport.from_dict(data).to_dict() == data
    preview = np.asarray(Image.open(os.path.join(out, reportlib.PREVIEW_PNG)))
    assert preview.shape == (4 * 34 + 2, 4 * 34 + 2, 3), "a 4×4 grid of 32 px images with 2 px padding"
    text = open(os.path.join(out, reportlib.REPORT_TEXT)).read()
    assert "input" in text and "48" in text and "written" in text
    assert report.summary_line().startswith("ingest: 48 in -> 48 written")


def test_dcgan_train_trains_from_the_ingested_examples(avatar_ingest, tmp_path, capsys):
    from dcgan.cli import main
    from dcgan.data import resolve_data

    _, out, report = avatar_ingest
    resolved = resolve_data(out)
    assert resolved.kind == "tfrecord" and all("/Split-train/" in f for f in resolved.files)
    run = str(tmp_path / "run")
    code = main(["train", "--data", out, "--size", "32", "--steps", "5", "--out", run, "--batch-size", "8",
                 "--ngf", "8", "--ndf", "8", "--log-every", "5", "--sample-every", "5", "--checkpoint-every", "5",
                 "--num-samples", "4", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{report.written['train']} usable images" in captured.err, "train must read exactly the train split"
    assert "to step 5" in captured.out
    assert os.path.isfile(os.path.join(run, "config.json"))


def test_split_is_a_stable_salted_hash_with_the_asked_ratio():
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000)]
    evals = [split_of(s, 0.1, 0) == "eval" for s in shas]
    assert 0.09 < np.mean(evals) < 0.11
    assert evals == [split_of(s, 0.1, 0) == "eval" for s in shas]
    assert evals != [split_of(s, 0.1, 1) == "eval" for s in shas], "the seed must salt the split"
    assert all(split_of(s, 0.0, 0) == "train" for s in shas[:100])


# -- sources -------------------------------------------------------------------------------------------------------
CELEBA_NAMES = ["Eyeglasses", "Smiling", "Young"]


def _celeba_like(i: int) -> bytes:
    """A 178×218 JPEG like CelebA's img_align_celeba: the 'face' (a bright square) in the middle."""
    img = np.full((218, 178, 3), (40 + 10 * i, 60, 90), np.uint8)
    img[55:163, 35:143] = (220, 180, 150)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _attributes_text(names: list[str], rows: dict[str, list[int]]) -> str:
    lines = [str(len(rows)), " ".join(names)]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows.items()]
    return "\n".join(lines) + "\n"


def test_celeba_zip_with_attributes_and_carpedm20_crop(tmp_path):
    archive = str(tmp_path / "img_align_celeba.zip")
    rows = {f"{i:06d}.jpg": [1 if (i + k) % 2 else -1 for k in range(3)] for i in range(1, 7)}
    with zipfile.ZipFile(archive, "w") as zf:
        for name in rows:
            zf.writestr(f"img_align_celeba/{name}", _celeba_like(int(name[:6])))
        zf.writestr("list_attr_celeba.txt", _attributes_text(CELEBA_NAMES, rows))
        zf.writestr("README.txt", "not an image")
    out = str(tmp_path / "out")
    report = run_ingest(IngestConfig(source=archive, size=32, crop_size=108, eval_ratio=0.0), out)
    assert report.written == {"train": 6, "eval": 0} and report.ignored == ["README.txt"]
    records = {r[schema.ID_KEY]: r for r in _records(out, "train")}
    assert sorted(records) == [f"img_align_celeba/{name}" for name in rows]
    for name, values in rows.items():
        r = records[f"img_align_celeba/{name}"]
        assert r["attributes"] == {n: "1" if v == 1 else "0" for n, v in zip(CELEBA_NAMES, values, strict=True)}
        face = imlib.decode_png(r[schema.IMAGE_KEY]).astype(int)
        assert np.abs(face - (220, 180, 150)).mean() < 6, "the 108 px central crop must be the 'face' only"
    assert glob.glob(schema.split_pattern(out, "eval")), "an empty eval split still gets its (empty) file"
    assert _records(out, "eval") == []


def test_folder_glob_and_file_sources_list_images_deterministically(tmp_path):
    root = tmp_path / "photos"
    for rel in ["b/2.png", "a/1.jpg", "a/z/3.webp", "c.bmp", ".hidden/4.png", "a/.5.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "notes.txt").write_text("hello")
    (tmp_path / "Anno").mkdir()
    (tmp_path / "Anno" / "list_attr_celeba.txt").write_text(_attributes_text(["Smiling"], {"1.jpg": [1]}))

    folder = sources.parse_source(str(root))
    assert [i.id for i in folder.items()] == ["a/1.jpg", "a/z/3.webp", "b/2.png", "c.bmp"]
    assert folder.ignored == ("notes.txt",)
    assert folder.attributes_file == str(tmp_path / "Anno" / "list_attr_celeba.txt")
    assert sources.attributes_for(folder, folder.items()[0]) == {"Smiling": "1"}
    assert sources.parse_source(str(root), attributes_file="").attributes_file == ""

    pattern = sources.parse_source(str(root / "**" / "*.png"))
    assert [i.id for i in pattern.items()] == ["b/2.png"]
    assert [i.id for i in sources.parse_source(str(root / "a" / "*")).items()] == ["1.jpg"]
    single = sources.parse_source(str(root / "c.bmp"))
    assert [(i.id, i.kind) for i in single.items()] == [("c.bmp", "file")]

    before = folder.fingerprint()
    assert sources.parse_source(str(root)).fingerprint() == before
    (root / "b" / "2.png").write_bytes(b"changed")
    assert sources.parse_source(str(root)).fingerprint() != before, "changed data must change the fingerprint"


@pytest.mark.parametrize("spec, message", [("/no/such/dir", "not found"), ("avatars:x:1", "integers"),
                                           ("", "empty")])
def test_unusable_sources_fail_before_running(spec, message):
    with pytest.raises(IngestError, match=message):
        plan_ingest(IngestConfig(source=spec))


def test_empty_folder_and_non_zip_fail_before_running(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no image files"):
        plan_ingest(IngestConfig(source=str(tmp_path / "empty")))
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(IngestError, match="not a readable zip"):
        plan_ingest(IngestConfig(source=str(tmp_path / "fake.zip")))


def test_celeba_attribute_parser_accepts_the_real_layout():
    text = "2\n5_o_Clock_Shadow Arched_Eyebrows\n000001.jpg -1  1\n000002.jpg  1 -1\n"
    assert sources.parse_celeba_attributes(text) == {
        "000001.jpg": {"5_o_Clock_Shadow": "0", "Arched_Eyebrows": "1"},
        "000002.jpg": {"5_o_Clock_Shadow": "1", "Arched_Eyebrows": "0"}}


# -- the command line ----------------------------------------------------------------------------------------------
def test_dcgan_ingest_command(tmp_path, capsys):
    from dcgan.cli import main

    out = str(tmp_path / "out")
    assert main(["ingest", "avatars:12:1", out, "--size", "32", "--eval-ratio", "0.2", "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("ingest: 12 in -> 12 written") and out in summary
    assert len(_records(out, "train")) + len(_records(out, "eval")) == 12

    assert main(["ingest", "avatars:12:1", out, "--size", "32", "--quiet"]) == 2
    assert "already holds an ingest output" in capsys.readouterr().err
    assert main(["ingest", "avatars:6:1", out, "--size", "32", "--quiet", "--force"]) == 0
    assert len(_records(out, "train")) + len(_records(out, "eval")) == 6, "--force must replace, not add"

    assert main(["ingest", str(tmp_path / "missing"), str(tmp_path / "o2"), "--quiet"]) == 2
    assert "source not found" in capsys.readouterr().err
    assert main(["ingest", "avatars:4", str(tmp_path / "o3"), "--eval-ratio", "1.5", "--quiet"]) == 2
    assert "eval_ratio" in capsys.readouterr().err


def test_dcgan_ingest_align_on_real_photos(tmp_path, capsys):
    from skimage import data

    from dcgan.cli import main

    folder = tmp_path / "photos"
    (folder / "holiday").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg", quality=90)
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:, ::-1])).save(folder / "holiday" / "mirrored.png")
    Image.fromarray(data.coffee()).save(folder / "holiday" / "coffee.jpg")
    out = str(tmp_path / "faces")
    assert main(["ingest", str(folder), out, "--align", "--size", "64", "--eval-ratio", "0", "--quiet"]) == 0
    assert "2 written" in capsys.readouterr().out
    records = {r[schema.ID_KEY]: imlib.decode_png(r[schema.IMAGE_KEY]) for r in _records(out, "train")}
    assert sorted(records) == ["astronaut.jpg", "holiday/mirrored.png"]
    # the same face, mirrored: after alignment the two crops are near mirror images of each other
    diff = np.abs(records["astronaut.jpg"].astype(int) - records["holiday/mirrored.png"][:, ::-1]).mean()
    assert diff < 25, f"aligned crops of a face and its mirror differ by {diff:.1f} on average"
    report = reportlib.load_report(out)
    assert [(r.id, r.reason) for r in report.rejects] == [("holiday/coffee.jpg", "no_face")]
    # version-2 features of an aligned crop, and the inputs split: every input with its outcome
    (astronaut,) = [r for r in _records(out, "train") if r[schema.ID_KEY] == "astronaut.jpg"]
    features = astronaut["features"]
    assert features[schema.FACE_CONFIDENCE_KEY] > 0.9 and abs(features[schema.FACE_ROLL_KEY]) < 5
    assert 0.15 < features[schema.FACE_SIZE_KEY] < 0.3
    assert features[schema.FACE_MARGIN_KEY] == pytest.approx(0.15)
    assert (features[schema.SOURCE_HEIGHT_KEY], features[schema.SOURCE_WIDTH_KEY]) == (512, 512)
    assert features[schema.COLOUR_KEY] == "colour" and features[schema.EXPOSURE_KEY] == "normal"
    inputs = {r[schema.ID_KEY]: r["features"] for r in _records(out, schema.INPUTS_SPLIT)}
    assert {i: f[schema.OUTCOME_KEY] for i, f in inputs.items()} == {
        "astronaut.jpg": "accepted", "holiday/coffee.jpg": "no_face", "holiday/mirrored.png": "accepted"}
    assert inputs["holiday/coffee.jpg"] == {schema.OUTCOME_KEY: "no_face", schema.SOURCE_HEIGHT_KEY: 400,
                                            schema.SOURCE_WIDTH_KEY: 600}
    assert inputs["astronaut.jpg"][schema.FACE_CONFIDENCE_KEY] == pytest.approx(features[schema.FACE_CONFIDENCE_KEY])
