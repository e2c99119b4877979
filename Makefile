# The two commands of README: `make run` (the main job) and `make test` (the test suite). Both set up .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench-setup clean test-kubeflow

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh $(ARGS)

test: setup
	@scripts/test.sh

# The pipeline image built with a local container engine, and the compiled Kubeflow spec executed in it (README
# "Kubeflow"); installs Debian's docker.io when there is no dockerd.
test-kubeflow: setup
	@scripts/test_kubeflow.sh

lint: setup
	$(VENV)/bin/ruff check dcgan components pipeline serving tests bench

bench-setup:
	@scripts/setup_bench.sh

clean:
	rm -rf runs artifacts test-artifacts .pytest_cache
