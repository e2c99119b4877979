"""The two locked stacks (dcgan.stack): which one this environment is, the differences it papers over, and how
scripts/setup.sh chooses. The same tests run on both lanes (make test, make test-current)."""

from __future__ import annotations

import os
import subprocess

import pytest
import tensorflow as tf
from google.protobuf import wrappers_pb2

from dcgan import fileio, stack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_stack_name_follows_the_installed_tensorflow():
    major, minor = (int(p) for p in tf.__version__.split(".")[:2])
    assert stack.tensorflow_version() == (major, minor)
    assert stack.name() == (stack.CURRENT if (major, minor) >= (2, 21) else stack.LEGACY)
    assert stack.describe().startswith(f"{stack.name()} (TensorFlow {tf.__version__}, Python ")


def test_s3_paths_work_on_legacy_and_fail_naming_the_stack_on_current():
    if stack.name() == stack.CURRENT:
        assert stack.s3_support() is not None
        with pytest.raises(RuntimeError,
                           match=r"s3://b/x: s3:// paths are not supported on the current .*tensorflow-io"):
            fileio.ensure_filesystem("s3://b/x")
    else:
        assert stack.s3_support() is None
        fileio.ensure_filesystem("s3://b/x")  # registers tensorflow-io's filesystem; no error
    fileio.ensure_filesystem("gs://b/x")  # built into TensorFlow on both stacks: nothing to do
    fileio.ensure_filesystem("/local/x")


def test_message_class_builds_working_messages_on_this_protobuf():
    cls = stack.message_class(wrappers_pb2.Int64Value.DESCRIPTOR)
    msg = cls(value=7)
    assert cls.FromString(msg.SerializeToString()).value == 7


def test_setup_refuses_an_unknown_stack_by_name():
    out = subprocess.run(["scripts/setup.sh"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "DCGAN_STACK": "newest", "DCGAN_VENV": "/nonexistent-venv"})
    assert out.returncode == 2
    assert "DCGAN_STACK must be 'legacy' or 'current', not 'newest'" in out.stderr
