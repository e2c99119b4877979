# The pipeline image: the exact locked environment plus this project, for Kubeflow Pipelines steps
# (`dcgan pipeline compile --kubeflow --image <registry>/dcgan-faces-pipeline:<tag>`) and for `dcgan studio`.
#   docker build -t <registry>/dcgan-faces-pipeline:0.1.0 . && docker push <registry>/dcgan-faces-pipeline:0.1.0
# TFX 1.16 supports Python 3.10 only; bookworm's glibc 2.36 is what the lock was resolved and tested on.
# BASE_IMAGE: any Debian 12 image with CPython 3.10 and pip in /usr/local. Where no registry is reachable,
# scripts/build_image.sh makes one with debootstrap + `docker import` and passes it here (docs/kubeflow.md).
ARG BASE_IMAGE=python:3.10.13-slim-bookworm
FROM ${BASE_IMAGE}

# TF_ENABLE_ONEDNN_OPTS=1: TensorFlow's oneDNN kernels on every x86 CPU, also where TFX's entrypoint imports
# TensorFlow before the project (dcgan.runtime; TF switches them on by itself only on AVX-512 VNNI/BF16-class CPUs).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    TF_ENABLE_ONEDNN_OPTS=1 \
    DCGAN_CACHE_DIR=/var/cache/dcgan

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9

# Dependencies first (cached layer): exactly the lock files, hashes verified, compiled to bytecode here. The image
# lock is requirements.lock without the test extra (same pins; scripts/lock.sh): no pytest, browsers, S3 emulator or
# docs site in a production image (51 packages, ~600 MB, ~5,000 modules fewer to install and compile). Every step of
# a pipeline starts a fresh container, and without .pyc files each one would compile TensorFlow, TFX and Beam again
# before its first line of work (PYTHONDONTWRITEBYTECODE keeps containers from writing any). A few locked packages
# are sdists with C++ extensions (pyfarmhash): g++ is installed for the build and removed in the same layer.
COPY requirements-image.lock requirements-nodeps.lock ./
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++ \
 && uv pip install --system --no-cache --compile-bytecode --require-hashes -r requirements-image.lock \
 && uv pip install --system --no-cache --compile-bytecode --no-deps --require-hashes -r requirements-nodeps.lock \
 && apt-get purge -y --auto-remove g++ \
 && rm -rf /var/lib/apt/lists/*

# The project (no dependency resolution: everything is already installed from the lock).
COPY pyproject.toml README.md ./
COPY dcgan dcgan
COPY components components
COPY pipeline pipeline
COPY serving serving
RUN uv pip install --system --no-cache --compile-bytecode --no-deps . \
 && python -c "from dcgan.metrics.inception import load_weights; load_weights()"  # convert + cache FID weights

# Kubeflow runs the TFX container entrypoint it writes into the PipelineJob; this default is for humans.
CMD ["dcgan", "--help"]
