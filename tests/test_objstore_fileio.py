"""dcgan.fileio on a real S3 server on loopback (moto): an upload interrupted half-way leaves no saved_model.pb (so a
model server never loads half a version), atomic writes and appends on S3, listing/glob/exists."""

from __future__ import annotations

import pytest

from dcgan import fileio


def _tree(tmp_path):
    src = tmp_path / "model"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"graph")
    (src / "variables" / "variables.index").write_bytes(b"index")
    (src / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    return src


def test_an_upload_interrupted_half_way_leaves_no_loadable_version(s3_env, tmp_path, monkeypatch):
    bucket = s3_env.create_bucket("upload-cut")
    real = fileio._gfile()

    class Cut:  # the real tf.io.gfile, but the connection "drops" at the variables' data file
        def __getattr__(self, name):
            return getattr(real, name)

        def copy(self, src, dst, overwrite=False):
            if "variables.data" in dst:
                raise ConnectionError("connection reset")
            return real.copy(src, dst, overwrite=overwrite)

    monkeypatch.setattr(fileio, "_gfile", lambda: Cut())
    with pytest.raises(ConnectionError):
        fileio.upload_tree(str(_tree(tmp_path)), f"{bucket}/serving/dcgan/7")
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket="upload-cut").get("Contents", [])]
    assert "serving/dcgan/7/saved_model.pb" not in keys  # what a model server waits for is written last


def test_upload_atomic_write_append_and_listing_on_s3(s3_env, tmp_path):
    bucket = s3_env.create_bucket("fileio-ops")
    dest = fileio.upload_tree(str(_tree(tmp_path)), f"{bucket}/m/1")
    assert fileio.exists(f"{dest}/saved_model.pb") and fileio.isdir(f"{dest}/variables")
    assert fileio.listdir(dest) == ["saved_model.pb", "variables"]
    assert fileio.glob(f"{dest}/variables/*.index") == [f"{dest}/variables/variables.index"]
    fileio.write_json_atomic(f"{bucket}/a/config.json", {"x": 1})
    assert fileio.read_bytes(f"{bucket}/a/config.json") == b'{"x": 1}\n'
    fileio.append_text(f"{bucket}/a/log.jsonl", "1\n")
    fileio.append_text(f"{bucket}/a/log.jsonl", "2\n")
    assert fileio.read_bytes(f"{bucket}/a/log.jsonl") == b"1\n2\n"
    local = fileio.download_tree(dest, str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "variables" / "variables.index").read_bytes() == b"index" and local
