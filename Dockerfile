# The pipeline image: the exact locked environment plus this project, for Kubeflow Pipelines steps
# (`dcgan pipeline compile --kubeflow --image <registry>/dcgan-faces-pipeline:<tag>`) and for `dcgan studio`.
#   docker build -t <registry>/dcgan-faces-pipeline:0.1.0 . && docker push <registry>/dcgan-faces-pipeline:0.1.0
# TFX 1.16 supports Python 3.10 only; bookworm's glibc 2.36 is what the lock was resolved and tested on.
FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    DCGAN_CACHE_DIR=/var/cache/dcgan

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9

# Dependencies first (cached layer): exactly the lock files, hashes verified.
COPY requirements.lock requirements-nodeps.lock ./
RUN uv pip install --system --no-cache --require-hashes -r requirements.lock \
 && uv pip install --system --no-cache --no-deps --require-hashes -r requirements-nodeps.lock

# The project (no dependency resolution: everything is already installed from the lock).
COPY pyproject.toml README.md ./
COPY dcgan dcgan
COPY components components
COPY pipeline pipeline
COPY serving serving
RUN uv pip install --system --no-cache --no-deps . \
 && python -c "from dcgan.metrics.inception import load_weights; load_weights()"  # convert + cache FID weights

# Kubeflow runs the TFX container entrypoint it writes into the PipelineJob; this default is for humans.
CMD ["dcgan", "--help"]
