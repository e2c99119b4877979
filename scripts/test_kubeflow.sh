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
# Two workers, one group of tests each (--dist loadgroup; the file's xdist_group marks): kfp.local's pipeline, which
# runs twice, with the other kfp.local tests on one; the image's own tests and the Vertex spec's pipeline, which also
# runs twice, on the other. The two long pipelines go side by side; each step is one container, mostly on one core.
# (Not worksteal: a worker that ran out of short tests stole the other long pipeline and ran both in a row, 5 minutes
# longer, whenever the short tests' times came out that way under load.)
workers=${DCGAN_TEST_WORKERS:-2}
parallel=()
[ "$workers" = 0 ] || parallel=(-n "$workers" --dist loadgroup)
DCGAN_PIPELINE_IMAGE="$IMAGE" DCGAN_KFP_PYTHON="$PWD/$KFP_PYTHON" .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=1800 -m container \
  "${parallel[@]}" --durations=10 tests/test_kubeflow_container.py "$@"
echo "test-kubeflow: done in $(( $(date +%s) - start )) s"
