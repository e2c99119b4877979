# The two commands of README: `make run` (the main job) and `make test` (the test suite). Both set up .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench-setup clean test-kubeflow test-current run-current bench-stacks info

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh $(ARGS)

test: setup
	@scripts/test.sh $(ARGS)

# The pipeline image built with a local container engine, and the compiled Kubeflow spec executed in it (README
# "Kubeflow"); installs Debian's docker.io when there is no dockerd.
test-kubeflow: setup
	@scripts/test_kubeflow.sh

# This machine for bug reports and benchmark tables: CPU, ISA flags, oneDNN, stack (`dcgan env`).
info: setup
	@$(VENV)/bin/dcgan env

lint: setup
	$(VENV)/bin/ruff check dcgan components pipeline serving tests bench

bench-setup:
	@scripts/setup_bench.sh

clean:
	rm -rf runs artifacts test-artifacts .pytest_cache

# The `current` stack (TFX 1.21 / TF 2.21 / Python 3.13) in a Debian 13 root, from any Linux host where we are root
# (scripts/in_current_root.sh: the root is made once under /var/cache/dcgan and reused). README "Supported platforms".
# Tests marked stack_neutral (the studio page in Chromium, fleet rollouts, canary decisions: 20% of this lane's test
# time) run on the legacy stack only (README "Development").
test-current:
	@scripts/in_current_root.sh make test ARGS='-m "not stack_neutral"'

run-current:
	@DCGAN_CURRENT_WORK=dcgan-run scripts/in_current_root.sh make run ARGS="$(ARGS)"

# Train and FID img/s of both stacks in one run (bench/stacks_throughput.py; legacy = .venv, current = the root).
bench-stacks: setup
	@DCGAN_CURRENT_WORK=dcgan-bench scripts/in_current_root.sh --host $(PY) bench/stacks_throughput.py $(ARGS)
