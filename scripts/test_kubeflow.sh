#!/usr/bin/env bash
# `make test-kubeflow` (CI): build the pipeline image with the local container engine (Debian's docker.io, installed
# if missing) and kfp.local's venv (.venv-kfp, scripts/kfp_local_env.sh), then run the container tests: the CLI and
# TFX's Kubeflow entrypoint inside the image, tensorflow-io's s3:// against a loopback S3 server from inside a
# container, the open-source Kubeflow Pipelines spec run twice by kfp.local's DockerRunner to a served model, and the
# Vertex AI spec on an S3 root. A dockerd this script started is stopped at the end; one it found running is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
engine_was_running=0
scripts/container_engine.sh docker version >/dev/null 2>&1 && engine_was_running=1
if [ "$engine_was_running" = 0 ]; then
  trap 'scripts/container_engine.sh stop' EXIT
fi
scripts/container_engine.sh start >/dev/null
IMAGE=$(scripts/build_image.sh "${DCGAN_PIPELINE_IMAGE:-dcgan-faces-pipeline:test}")
KFP_PYTHON=$(scripts/kfp_local_env.sh)
echo "test-kubeflow: image $IMAGE and $KFP_PYTHON ready after $(( $(date +%s) - start )) s"
# Two pytest processes side by side, each one group of the file's tests: kfp.local's pipeline, which runs twice,
# with the other kfp.local tests; and the image's own tests with the Vertex spec's pipeline, which also runs twice.
# The two long pipelines always go side by side (each step is one container, mostly on one core). Not pytest-xdist:
# its schedulers queue up to two tests per worker ahead, and a worker that finished its short tests first left the
# other worker both pipelines in a row (alone, the lane then took ~530 s instead of ~350 s; found with a per-test
# timeline).
# DCGAN_TEST_WORKERS=0: the whole file in one process.
KFP_LOCAL_TESTS="open_source_spec or kfp_client_reads or failing_task"
run_tests() {
  DCGAN_PIPELINE_IMAGE="$IMAGE" DCGAN_KFP_PYTHON="$PWD/$KFP_PYTHON" .venv/bin/python -m pytest -q -p no:cacheprovider \
    --timeout=1800 -m container --durations=10 tests/test_kubeflow_container.py "$@"
}
if [ "${DCGAN_TEST_WORKERS:-2}" = 0 ]; then
  run_tests "$@"
else
  base=${TMPDIR:-/tmp}/dcgan-test-kubeflow  # a temporary folder per process, neither cleans up the other's
  mkdir -p "$base"
  run_tests -k "$KFP_LOCAL_TESTS" --basetemp="$base/kfp_local" "$@" 2>&1 | sed -u 's/^/[kfp.local] /' & kfp_local=$!
  run_tests -k "not ($KFP_LOCAL_TESTS)" --basetemp="$base/image_vertex" "$@" 2>&1 | sed -u 's/^/[image+vertex] /' & vertex=$!
  rc=0
  wait "$kfp_local" || rc=1
  wait "$vertex" || rc=1
  [ "$rc" = 0 ] || { echo "test-kubeflow: failed after $(( $(date +%s) - start )) s"; exit 1; }
fi
echo "test-kubeflow: done in $(( $(date +%s) - start )) s"
