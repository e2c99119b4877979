"""dcgan.fileio's object-store set-up against a real S3 server on loopback (moto): AWS_ENDPOINT_URL alone makes
tf.io.gfile write, list and read s3:// paths once ensure_filesystem has run."""

from __future__ import annotations

from dcgan import fileio


def test_s3_environment_is_derived_from_aws_endpoint_url():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"}
    assert fileio.s3_environment(env) == {"S3_ENDPOINT": "http://127.0.0.1:9000", "S3_USE_HTTPS": "0",
                                          "S3_VERIFY_SSL": "0"}
    # values the user set explicitly win
    assert fileio.s3_environment({**env, "S3_USE_HTTPS": "1"}) == {"S3_ENDPOINT": "http://127.0.0.1:9000",
                                                                    "S3_VERIFY_SSL": "0"}
    assert fileio.s3_environment({}) == {}


def test_remote_paths_are_recognised():
    assert fileio.is_remote("s3://bucket/x") and fileio.is_remote("gs://bucket/x")
    assert not fileio.is_remote("/tmp/x") and not fileio.is_remote("runs/quick")


def test_tf_gfile_reads_writes_and_lists_s3_on_loopback(s3_env):
    import tensorflow as tf

    bucket = s3_env.create_bucket("fileio-test")
    fileio.ensure_filesystem(bucket)
    tf.io.gfile.makedirs(f"{bucket}/a/b")
    with tf.io.gfile.GFile(f"{bucket}/a/b/hello.txt", "w") as f:
        f.write("hello s3")
    assert tf.io.gfile.listdir(f"{bucket}/a/b") == ["hello.txt"]
    with tf.io.gfile.GFile(f"{bucket}/a/b/hello.txt") as f:
        assert f.read() == "hello s3"
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket="fileio-test")["Contents"]]
    assert "a/b/hello.txt" in keys


def test_tensorflow_io_time_limits_are_bounded_unless_the_user_set_them():
    assert fileio.s3_client_limits({}) == {"S3_CONNECT_TIMEOUT_MSEC": "10000", "S3_REQUEST_TIMEOUT_MSEC": "60000"}
    assert fileio.s3_client_limits({"S3_CONNECT_TIMEOUT_MSEC": "500"}) == {"S3_REQUEST_TIMEOUT_MSEC": "60000"}
